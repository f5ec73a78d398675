/**
 * In-memory store: the default when DATABASE_URL is empty. It mirrors the Postgres
 * constraints (unique slug and prefix, slug format, one entitlement per product, foreign
 * keys) with the same StoreConstraintError, and runs transactions one at a time with an
 * undo log, so a failed transaction leaves nothing behind.
 */
import { LocalChangeFeed, type Change } from './change-feed.js';
import { defaultCatalog } from './default-catalog.js';
import {
  StoreConstraintError,
  type ApiKey,
  type AuditEvent,
  type AuditFilter,
  type AuditPosition,
  type Entitlement,
  type IdempotencyRecord,
  type Product,
  type ProductRequest,
  type ProductRequestStatus,
  type Store,
  type StoreTx,
  type Tenant,
  type TenantStatus,
} from './store.js';

export const ACME_TENANT_ID = '00000000-0000-0000-0000-000000000001';
const SLUG_FORMAT = /^[a-z0-9](?:[a-z0-9-]{1,61}[a-z0-9])$/;

type Undo = () => void;

/** Byte-order comparison of strings (COLLATE "C" for the ASCII keys used here). */
const byteOrder = (a: string, b: string) => Buffer.compare(Buffer.from(a), Buffer.from(b));
const newerFirst = (a: AuditPosition, b: AuditPosition) =>
  b.occurredAt.getTime() - a.occurredAt.getTime() || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0);

const copyKey = (k: ApiKey): ApiKey => ({ ...k, scopes: [...k.scopes] });
const copyEvent = (e: AuditEvent): AuditEvent => ({
  ...e,
  actor: { ...e.actor },
  target: e.target && { ...e.target },
  fields: { ...e.fields },
});

export class MemoryStore implements Store {
  readonly kind = 'memory' as const;
  readonly changes = new LocalChangeFeed();
  private readonly tenants = new Map<string, Tenant>();
  private readonly tenantBySlug = new Map<string, string>();
  private readonly products = new Map<string, Product>();
  private readonly entitlements = new Map<string, Entitlement>();
  private readonly requests = new Map<string, ProductRequest>();
  private readonly keys = new Map<string, ApiKey>();
  private readonly keyByPrefix = new Map<string, string>();
  /** Oldest first by (occurredAt, id); queries walk it from the end. */
  private readonly audit: AuditEvent[] = [];
  private readonly idempotency = new Map<string, IdempotencyRecord>();
  private queue: Promise<unknown> = Promise.resolve();

  constructor(opts: { seed?: boolean } = {}) {
    for (const p of defaultCatalog) this.products.set(p.key, { ...p });
    if (opts.seed ?? true) {
      const at = new Date();
      const acme: Tenant = { id: ACME_TENANT_ID, slug: 'acme', name: 'Acme', status: 'active', createdAt: at, updatedAt: at };
      this.tenants.set(acme.id, acme);
      this.tenantBySlug.set(acme.slug, acme.id);
    }
  }

  // ---- reads -------------------------------------------------------------------------

  async getTenant(id: string): Promise<Tenant | null> {
    const t = this.tenants.get(id);
    return t ? { ...t } : null;
  }

  async getTenantBySlug(slug: string): Promise<Tenant | null> {
    const id = this.tenantBySlug.get(slug);
    return id ? this.getTenant(id) : null;
  }

  async getProduct(key: string): Promise<Product | null> {
    const p = this.products.get(key);
    return p ? { ...p } : null;
  }

  async listProducts(opts: { requestableOnly: boolean }): Promise<Product[]> {
    return [...this.products.values()]
      .filter((p) => !opts.requestableOnly || p.requestable)
      .sort((a, b) => byteOrder(a.key, b.key))
      .map((p) => ({ ...p }));
  }

  async listEntitlements(tenantId: string): Promise<Entitlement[]> {
    return [...this.entitlements.values()]
      .filter((e) => e.tenantId === tenantId)
      .sort((a, b) => byteOrder(a.product, b.product))
      .map((e) => ({ ...e }));
  }

  async getEntitlement(tenantId: string, product: string): Promise<Entitlement | null> {
    for (const e of this.entitlements.values()) {
      if (e.tenantId === tenantId && e.product === product) return { ...e };
    }
    return null;
  }

  async findProductRequest(tenantId: string, product: string, status: ProductRequestStatus): Promise<ProductRequest | null> {
    for (const r of this.requests.values()) {
      if (r.tenantId === tenantId && r.product === product && r.status === status) return { ...r };
    }
    return null;
  }

  async getApiKey(id: string): Promise<ApiKey | null> {
    const k = this.keys.get(id);
    return k ? copyKey(k) : null;
  }

  async getApiKeyByPrefix(prefix: string): Promise<ApiKey | null> {
    const id = this.keyByPrefix.get(prefix);
    return id ? this.getApiKey(id) : null;
  }

  async listApiKeys(tenantId: string, opts: { includeRevoked: boolean }): Promise<ApiKey[]> {
    return [...this.keys.values()]
      .filter((k) => k.tenantId === tenantId && (opts.includeRevoked || !k.revokedAt))
      .sort((a, b) => b.createdAt.getTime() - a.createdAt.getTime() || (a.id < b.id ? 1 : -1))
      .map(copyKey);
  }

  async queryAudit(filter: AuditFilter, after: AuditPosition | null, limit: number): Promise<AuditEvent[]> {
    const page: AuditEvent[] = [];
    for (let i = this.audit.length - 1; i >= 0 && page.length < limit; i--) {
      const e = this.audit[i]!;
      if (after && newerFirst(after, e) >= 0) continue;
      if (filter.until && e.occurredAt >= filter.until) continue;
      if (filter.since && e.occurredAt < filter.since) break;
      if (filter.tenantId !== undefined && e.tenantId !== filter.tenantId) continue;
      if (filter.product !== undefined && e.product !== filter.product) continue;
      if (filter.actorId !== undefined && e.actor.id !== filter.actorId) continue;
      if (filter.action !== undefined && e.action !== filter.action) continue;
      page.push(copyEvent(e));
    }
    return page;
  }

  // ---- transactions ------------------------------------------------------------------

  transaction<T>(fn: (tx: StoreTx) => Promise<T>): Promise<T> {
    const run = async () => {
      const undo: Undo[] = [];
      const changes: Change[] = [];
      try {
        const result = await fn(this.writer(undo, changes));
        this.changes.emitLocal(changes);
        return result;
      } catch (err) {
        for (const u of undo.reverse()) u();
        throw err;
      }
    };
    const result = this.queue.then(run, run);
    this.queue = result.catch(() => undefined);
    return result;
  }

  insertAudit(event: AuditEvent): Promise<AuditEvent> {
    return this.transaction((tx) => tx.insertAudit(event));
  }

  async touchApiKeys(uses: ReadonlyArray<{ id: string; at: Date }>): Promise<void> {
    for (const { id, at } of uses) {
      const k = this.keys.get(id);
      if (k && (!k.lastUsedAt || k.lastUsedAt < at)) this.keys.set(id, { ...k, lastUsedAt: at });
    }
  }

  async claimIdempotencyKey(
    record: IdempotencyRecord,
    opts: { expiredBefore: Date; abandonedBefore: Date },
  ): Promise<IdempotencyRecord | null> {
    const id = `${record.scope}\0${record.key}`;
    const held = this.idempotency.get(id);
    const replaceable =
      !held || held.createdAt < opts.expiredBefore || (held.state === 'pending' && held.updatedAt < opts.abandonedBefore);
    if (!replaceable) return { ...held };
    this.idempotency.set(id, { ...record });
    return null;
  }

  async completeIdempotencyKey(scope: string, key: string, response: unknown, at: Date): Promise<void> {
    const id = `${scope}\0${key}`;
    const held = this.idempotency.get(id);
    if (held) this.idempotency.set(id, { ...held, state: 'done', response: structuredClone(response), updatedAt: at });
  }

  async releaseIdempotencyKey(scope: string, key: string): Promise<void> {
    this.idempotency.delete(`${scope}\0${key}`);
  }

  async ping(): Promise<void> {}
  async close(): Promise<void> {
    await this.changes.close();
  }

  /** A transaction handle: the reads above plus writes that register their undo. */
  private writer(undo: Undo[], changes: Change[]): StoreTx {
    const put = <K, V>(map: Map<K, V>, key: K, value: V) => {
      const had = map.has(key);
      const old = map.get(key);
      map.set(key, value);
      undo.push(() => (had ? map.set(key, old as V) : map.delete(key)));
    };
    const requireTenant = (id: string) => {
      if (!this.tenants.has(id)) throw new StoreConstraintError('foreign_key');
    };
    const requireProduct = (key: string | null) => {
      if (key !== null && !this.products.has(key)) throw new StoreConstraintError('foreign_key');
    };
    const tx: StoreTx = {
      getTenant: (id) => this.getTenant(id),
      getTenantBySlug: (slug) => this.getTenantBySlug(slug),
      getProduct: (key) => this.getProduct(key),
      listProducts: (opts) => this.listProducts(opts),
      listEntitlements: (tenantId) => this.listEntitlements(tenantId),
      getEntitlement: (tenantId, product) => this.getEntitlement(tenantId, product),
      findProductRequest: (tenantId, product, status) => this.findProductRequest(tenantId, product, status),
      getApiKey: (id) => this.getApiKey(id),
      getApiKeyByPrefix: (prefix) => this.getApiKeyByPrefix(prefix),
      listApiKeys: (tenantId, opts) => this.listApiKeys(tenantId, opts),
      queryAudit: (filter, after, limit) => this.queryAudit(filter, after, limit),

      insertTenant: async (t) => {
        if (!SLUG_FORMAT.test(t.slug)) throw new StoreConstraintError('tenants_slug_format');
        if (this.tenantBySlug.has(t.slug)) throw new StoreConstraintError('tenants_slug_unique');
        put(this.tenants, t.id, { ...t });
        put(this.tenantBySlug, t.slug, t.id);
        return { ...t };
      },
      updateTenantStatus: async (id: string, status: TenantStatus, at: Date) => {
        const t = this.tenants.get(id);
        if (!t) throw new StoreConstraintError('foreign_key');
        const next = { ...t, status, updatedAt: at };
        put(this.tenants, id, next);
        changes.push({ kind: 'tenant', id });
        return { ...next };
      },
      insertEntitlement: async (e) => {
        requireTenant(e.tenantId);
        requireProduct(e.product);
        for (const other of this.entitlements.values()) {
          if (other.tenantId === e.tenantId && other.product === e.product) {
            throw new StoreConstraintError('entitlements_tenant_product_unique');
          }
        }
        put(this.entitlements, e.id, { ...e });
        changes.push({ kind: 'tenant', id: e.tenantId });
        return { ...e };
      },
      insertProductRequest: async (r) => {
        requireTenant(r.tenantId);
        requireProduct(r.product);
        put(this.requests, r.id, { ...r });
        return { ...r };
      },
      insertApiKey: async (k) => {
        requireTenant(k.tenantId);
        requireProduct(k.product);
        if (this.keyByPrefix.has(k.prefix)) throw new StoreConstraintError('api_keys_prefix_unique');
        put(this.keys, k.id, copyKey(k));
        put(this.keyByPrefix, k.prefix, k.id);
        return copyKey(k);
      },
      revokeApiKey: async (id, at) => {
        const k = this.keys.get(id);
        if (!k) throw new StoreConstraintError('foreign_key');
        const next = { ...k, revokedAt: at };
        put(this.keys, id, next);
        changes.push({ kind: 'api_key', id });
        return copyKey(next);
      },
      insertAudit: async (e) => {
        if (e.tenantId !== null) requireTenant(e.tenantId);
        const log = this.audit;
        let lo = 0;
        let hi = log.length;
        while (lo < hi) {
          const mid = (lo + hi) >>> 1;
          if (newerFirst(log[mid]!, e) > 0) lo = mid + 1;
          else hi = mid;
        }
        log.splice(lo, 0, copyEvent(e));
        undo.push(() => {
          const at = log.findIndex((x) => x.id === e.id);
          if (at >= 0) log.splice(at, 1);
        });
        return copyEvent(e);
      },
    };
    return tx;
  }
}
