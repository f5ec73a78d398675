/**
 * Verified access tokens, remembered so that a caller sending the same bearer token on every
 * request (a gateway's service account) costs one signature check per minute, not one per
 * request. Keyed by a SHA-256 of the token; an entry never outlives the token's `exp` nor
 * 60 s; LRU-bounded.
 */
import { hash } from 'node:crypto';
import type { JWTPayload } from 'jose';

export class VerifiedTokens {
  private readonly entries = new Map<string, { payload: JWTPayload; until: number }>();

  constructor(
    private readonly maxEntries = 1000,
    private readonly maxAgeMs = 60_000,
  ) {}

  private static digest(token: string): string {
    return hash('sha256', token, 'base64url');
  }

  get(token: string, now = Date.now()): JWTPayload | undefined {
    const id = VerifiedTokens.digest(token);
    const entry = this.entries.get(id);
    if (!entry) return undefined;
    this.entries.delete(id);
    if (entry.until <= now) return undefined;
    this.entries.set(id, entry);
    return entry.payload;
  }

  set(token: string, payload: JWTPayload, now = Date.now()): void {
    const until = Math.min(now + this.maxAgeMs, (payload.exp ?? 0) * 1000);
    if (until <= now) return;
    this.entries.set(VerifiedTokens.digest(token), { payload, until });
    while (this.entries.size > this.maxEntries) this.entries.delete(this.entries.keys().next().value as string);
  }
}
