/**
 * The verify hot path's memory. After a key has been verified once (one argon2 run), later
 * verifies of the same plaintext are answered from here; wrong secrets are remembered
 * briefly so that hammering one bad key costs one argon2 run.
 *
 * - Entries are keyed by a SHA-256 of a per-process random salt and the plaintext (one-shot
 *   `crypto.hash`, a quarter of an HMAC's cost); the plaintext itself is never kept.
 * - An entry holds the facts the decision needs (key, tenant, entitlements looked at), not
 *   the decision: expiry is judged against the clock on every hit.
 * - Bounded: LRU over `maxEntries`, and every entry lives at most `ttlMs`.
 * - Changes (revoke, tenant status, entitlements) drop entries on every instance through the
 *   store's change feed; while the feed is unhealthy nothing is served from here.
 */
import { hash, randomBytes } from 'node:crypto';
import type { Change, ChangeFeed } from '../db/change-feed.js';
import type { Entitlement, TenantStatus } from '../db/store.js';

export interface KeyFacts {
  keyId: string;
  tenantId: string;
  tenantSlug: string;
  tenantStatus: TenantStatus;
  keyProduct: string | null;
  scopes: string[];
  expiresAt: Date | null;
  revokedAt: Date | null;
  /** Entitlements looked up so far, by product (null: none). */
  entitlements: Map<string, Entitlement | null>;
}

interface Entry {
  facts: KeyFacts | null; // null: a wrong secret or unknown prefix
  expiresAt: number;
}

export interface VerifyCacheOptions {
  maxEntries?: number;
  ttlMs?: number;
  negativeTtlMs?: number;
}

export type CacheLookup = { hit: true; facts: KeyFacts | null } | { hit: false };

export class VerifyCache {
  /** Known only to this process: a digest says nothing outside it. */
  private readonly salt = randomBytes(32).toString('hex');
  private readonly entries = new Map<string, Entry>();
  private readonly byKey = new Map<string, string>();
  private readonly byTenant = new Map<string, Set<string>>();
  private readonly maxEntries: number;
  private readonly ttlMs: number;
  private readonly negativeTtlMs: number;
  /** Bumped by every change: a load that saw an older epoch must not be remembered. */
  private epoch = 0;
  private readonly inflight = new Map<string, Promise<unknown>>();
  /**
   * "This plaintext is key X", learnt from one argon2 match. A key's hash never changes, so
   * this survives every change (only the facts are re-read): after a revoke or a tenant
   * change, the next verify costs a row read, not another argon2 run.
   */
  private readonly proofs = new Map<string, string>();
  readonly stats = { hits: 0, misses: 0 };

  constructor(
    private readonly feed: ChangeFeed,
    opts: VerifyCacheOptions = {},
  ) {
    this.maxEntries = opts.maxEntries ?? 10_000;
    this.ttlMs = opts.ttlMs ?? 60_000;
    this.negativeTtlMs = opts.negativeTtlMs ?? 30_000;
    feed.subscribe((change) => this.apply(change));
  }

  digest(plaintext: string): string {
    return hash('sha256', this.salt + plaintext, 'base64url');
  }

  provenKey(digest: string): string | undefined {
    return this.proofs.get(digest);
  }

  prove(digest: string, keyId: string): void {
    this.proofs.delete(digest);
    this.proofs.set(digest, keyId);
    if (this.proofs.size > this.maxEntries) this.proofs.delete(this.proofs.keys().next().value as string);
  }

  get currentEpoch(): number {
    return this.epoch;
  }

  lookup(digest: string, now = Date.now()): CacheLookup {
    const entry = this.feed.healthy ? this.entries.get(digest) : undefined;
    if (!entry || entry.expiresAt <= now) {
      if (entry) this.drop(digest);
      this.stats.misses++;
      return { hit: false };
    }
    // Least recently used goes first: re-insert to move this one to the end.
    this.entries.delete(digest);
    this.entries.set(digest, entry);
    this.stats.hits++;
    return { hit: true, facts: entry.facts };
  }

  /** Remembers what a load found, unless a change arrived since it started (`epoch`). */
  remember(digest: string, facts: KeyFacts | null, epoch: number, now = Date.now()): void {
    if (epoch !== this.epoch || !this.feed.healthy) return;
    this.drop(digest);
    this.entries.set(digest, { facts, expiresAt: now + (facts ? this.ttlMs : this.negativeTtlMs) });
    if (facts) {
      this.byKey.set(facts.keyId, digest);
      let set = this.byTenant.get(facts.tenantId);
      if (!set) this.byTenant.set(facts.tenantId, (set = new Set()));
      set.add(digest);
    }
    while (this.entries.size > this.maxEntries) {
      const oldest = this.entries.keys().next().value as string;
      this.drop(oldest);
    }
  }

  /**
   * One load per digest at a time: concurrent cold verifies of one key share its argon2 run.
   * A change forgets the loads running when it arrived (`apply`): what they read may predate
   * it, so a verify that starts after the change starts a load of its own.
   */
  loadOnce<T>(digest: string, load: () => Promise<T>): Promise<T> {
    const running = this.inflight.get(digest) as Promise<T> | undefined;
    if (running) return running;
    const started: Promise<T> = load().finally(() => {
      if (this.inflight.get(digest) === started) this.inflight.delete(digest);
    });
    this.inflight.set(digest, started);
    return started;
  }

  get size(): number {
    return this.entries.size;
  }

  private apply(change: Change): void {
    this.epoch++;
    this.inflight.clear();
    if (change.kind === 'reset') {
      this.entries.clear();
      this.byKey.clear();
      this.byTenant.clear();
    } else if (change.kind === 'api_key') {
      const digest = this.byKey.get(change.id);
      if (digest) this.drop(digest);
    } else {
      for (const digest of this.byTenant.get(change.id) ?? []) this.drop(digest);
    }
  }

  private drop(digest: string): void {
    const entry = this.entries.get(digest);
    this.entries.delete(digest);
    const facts = entry?.facts;
    if (!facts) return;
    if (this.byKey.get(facts.keyId) === digest) this.byKey.delete(facts.keyId);
    const set = this.byTenant.get(facts.tenantId);
    set?.delete(digest);
    if (set?.size === 0) this.byTenant.delete(facts.tenantId);
  }
}
