/**
 * Opaque keyset cursors for GET /v1/audit: base64url of the last event's position plus a
 * fingerprint of the filters, so a cursor used with other filters is refused.
 */
import { createHash } from 'node:crypto';
import type { AuditFilter, AuditPosition } from '../db/store.js';
import { isRepresentableTime } from '../domain/formats.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

function fingerprint(filter: AuditFilter): string {
  const canonical = JSON.stringify([
    filter.tenantId ?? null,
    filter.product ?? null,
    filter.actorId ?? null,
    filter.action ?? null,
    filter.since?.getTime() ?? null,
    filter.until?.getTime() ?? null,
  ]);
  return createHash('sha256').update(canonical).digest('base64url').slice(0, 16);
}

export function encodeCursor(position: AuditPosition, filter: AuditFilter): string {
  const body = JSON.stringify({ t: position.occurredAt.getTime(), i: position.id, f: fingerprint(filter) });
  return Buffer.from(body).toString('base64url');
}

export type DecodedCursor = { ok: true; position: AuditPosition } | { ok: false; reason: string };

export function decodeCursor(cursor: string, filter: AuditFilter): DecodedCursor {
  let parsed: unknown;
  try {
    if (!/^[A-Za-z0-9_-]+$/.test(cursor)) throw new Error('not base64url');
    parsed = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    return { ok: false, reason: 'cursor is not a valid position' };
  }
  const { t, i, f } = (parsed ?? {}) as { t?: unknown; i?: unknown; f?: unknown };
  // Times outside 0001–9999 are no stored event's: Postgres could not even compare them (500).
  if (typeof t !== 'number' || !Number.isSafeInteger(t) || !isRepresentableTime(t) || typeof i !== 'string' || !UUID.test(i)) {
    return { ok: false, reason: 'cursor is not a valid position' };
  }
  if (f !== fingerprint(filter)) return { ok: false, reason: 'cursor was made with different filters' };
  return { ok: true, position: { occurredAt: new Date(t), id: i } };
}
