/**
 * Retries that repeat: an `Idempotency-Key` on a creating request makes a retry with the same
 * key and the same input replay the first answer for 24 hours, instead of creating twice.
 *   - same key, different input → 409;
 *   - same key while the first request is still running → 409 (retry later);
 *   - same key and input after a new API key was issued → 409: the plaintext is never shown
 *     twice, and it is never stored (only the key's id is kept).
 * Keys are scoped per caller. A claim whose request died (pending for over a minute) may be
 * taken over, and a request that fails releases its claim so that a retry runs again.
 */
import { createHash } from 'node:crypto';
import type { IdempotencyRecord } from '../db/store.js';
import type { Deps } from './deps.js';
import { conflict, invalid } from './errors.js';

export const IDEMPOTENCY_TTL_MS = 24 * 60 * 60_000;
const ABANDONED_AFTER_MS = 60_000;
const KEY_FORMAT = /^[\x21-\x7e]{1,255}$/;

export interface IdempotencyRequest<T> {
  /** The Idempotency-Key header, or null when absent. */
  key: string | null;
  /** Who is asking: keys of different callers never meet. */
  scope: string;
  /** The procedure, so one key cannot replay another operation's answer. */
  operation: string;
  input: unknown;
  /**
   * For answers that hold a secret (a new API key's plaintext): only `keep(result)` is
   * stored, and a replay is refused with `refusal(kept)` instead of answered.
   */
  secret?: { keep: (result: T) => unknown; refusal: (kept: unknown) => string };
}

const fingerprint = (operation: string, input: unknown) =>
  createHash('sha256').update(operation).update('\0').update(JSON.stringify(input)).digest('base64url');

export async function runIdempotently<T>(deps: Deps, req: IdempotencyRequest<T>, work: () => Promise<T>): Promise<T> {
  if (req.key === null) return work();
  if (!KEY_FORMAT.test(req.key)) throw invalid(['Idempotency-Key'], 'Idempotency-Key must be 1–255 visible ASCII characters');
  const at = new Date();
  const requestHash = fingerprint(req.operation, req.input);
  const existing = await deps.store.claimIdempotencyKey(
    { scope: req.scope, key: req.key, requestHash, state: 'pending', response: null, createdAt: at, updatedAt: at },
    { expiredBefore: new Date(at.getTime() - IDEMPOTENCY_TTL_MS), abandonedBefore: new Date(at.getTime() - ABANDONED_AFTER_MS) },
  );
  if (existing) return replay<T>(existing, requestHash, req);
  let result: T;
  try {
    result = await work();
  } catch (err) {
    await deps.store.releaseIdempotencyKey(req.scope, req.key).catch(() => undefined);
    throw err;
  }
  const stored = req.secret ? req.secret.keep(result) : result;
  await deps.store.completeIdempotencyKey(req.scope, req.key, stored, new Date());
  return result;
}

function replay<T>(record: IdempotencyRecord, requestHash: string, req: IdempotencyRequest<T>): T {
  if (record.requestHash !== requestHash) throw conflict('this Idempotency-Key was already used with a different request');
  if (record.state === 'pending') throw conflict('a request with this Idempotency-Key is still in progress; retry shortly');
  if (req.secret) throw conflict(req.secret.refusal(record.response));
  return record.response as T;
}
