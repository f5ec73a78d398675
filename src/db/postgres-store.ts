/**
 * Postgres store: Drizzle over a node-postgres Pool. A thin adapter — rows in, rows out —
 * that turns constraint violations into StoreConstraintError and lost connections into
 * StoreUnavailableError.
 */
import { and, eq, gte, isNull, lt, sql, type SQL } from 'drizzle-orm';
import { drizzle, type NodePgDatabase } from 'drizzle-orm/node-postgres';
import type pg from 'pg';
import { CHANGE_CHANNEL, type Change, type ChangeFeed } from './change-feed.js';
import { apiKeys, auditLog, entitlements, idempotencyKeys, productRequests, products, tenants } from './schema.js';
import {
  StoreConstraintError,
  StoreUnavailableError,
  type AuditEvent,
  type AuditFilter,
  type AuditPosition,
  type ConstraintName,
  type IdempotencyRecord,
  type Crud,
  type ActorType,
  type Store,
  type StoreTx,
} from './store.js';

type Db = NodePgDatabase;
type AuditRow = typeof auditLog.$inferSelect;

const KNOWN_CONSTRAINTS = new Set<string>([
  'tenants_slug_unique',
  'tenants_slug_format',
  'entitlements_tenant_product_unique',
  'api_keys_prefix_unique',
]);
const UNAVAILABLE_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', '57014']);

/** Translates a driver error into the store's vocabulary; anything else passes through. */
export function translatePgError(err: unknown): unknown {
  const e = (err as { cause?: unknown })?.cause ?? err;
  const code = (e as { code?: string })?.code;
  const constraint = (e as { constraint?: string })?.constraint;
  if (code === '23505' || code === '23514') {
    if (constraint && KNOWN_CONSTRAINTS.has(constraint)) return new StoreConstraintError(constraint as ConstraintName);
  }
  if (code === '23503') return new StoreConstraintError('foreign_key');
  const message = (e as Error)?.message ?? '';
  if (
    (code && (UNAVAILABLE_CODES.has(code) || code.startsWith('08') || code.startsWith('57P') || code.startsWith('53'))) ||
    /Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error|Query read timeout|Connection ended/i.test(
      message,
    )
  ) {
    return new StoreUnavailableError('database unavailable', { cause: e });
  }
  return err;
}

const toAuditEvent = (r: AuditRow): AuditEvent => ({
  id: r.id,
  tenantId: r.tenantId,
  product: r.product,
  action: r.action,
  crud: r.crud as Crud | null,
  actor: { id: r.actorId, name: r.actorName, type: r.actorType as ActorType },
  target: r.targetId !== null && r.targetType !== null ? { id: r.targetId, type: r.targetType, name: r.targetName } : null,
  description: r.description,
  sourceIp: r.sourceIp,
  isFailure: r.isFailure,
  fields: r.fields,
  occurredAt: r.occurredAt,
  receivedAt: r.receivedAt,
});

const auditConditions = (f: AuditFilter, after: AuditPosition | null): SQL[] => {
  const where: SQL[] = [];
  if (f.tenantId !== undefined) where.push(eq(auditLog.tenantId, f.tenantId));
  if (f.product !== undefined) where.push(eq(auditLog.product, f.product));
  if (f.actorId !== undefined) where.push(eq(auditLog.actorId, f.actorId));
  if (f.action !== undefined) where.push(eq(auditLog.action, f.action));
  if (f.since) where.push(gte(auditLog.occurredAt, f.since));
  if (f.until) where.push(lt(auditLog.occurredAt, f.until));
  if (after) {
    where.push(
      sql`(${auditLog.occurredAt}, ${auditLog.id}) < (${after.occurredAt.toISOString()}::timestamptz, ${after.id}::uuid)`,
    );
  }
  return where;
};

const $ = (name: string) => sql.placeholder(name);
/**
 * Unnamed on the wire: Postgres parses them per call, and no connection keeps statement
 * state (a pooler in transaction mode, or sessions shared behind one, would trip on it).
 */
const UNNAMED = '';

/**
 * The statements of the busiest requests (a tenant by id, a tenant created, an audit event
 * appended), built once per database handle instead of on every call: building an INSERT of
 * 17 columns was ~15 % of an audit append's CPU.
 */
function buildStatements(db: Db) {
  return {
    getTenant: db.select().from(tenants).where(eq(tenants.id, $('id'))).prepare(UNNAMED),
    insertTenant: db
      .insert(tenants)
      .values({ id: $('id'), slug: $('slug'), name: $('name'), status: $('status'), createdAt: $('createdAt'), updatedAt: $('updatedAt') })
      .returning()
      .prepare(UNNAMED),
    insertAudit: db
      .insert(auditLog)
      .values({
        id: $('id'),
        tenantId: $('tenantId'),
        product: $('product'),
        action: $('action'),
        crud: $('crud'),
        actorId: $('actorId'),
        actorName: $('actorName'),
        actorType: $('actorType'),
        targetId: $('targetId'),
        targetType: $('targetType'),
        targetName: $('targetName'),
        description: $('description'),
        sourceIp: $('sourceIp'),
        isFailure: $('isFailure'),
        fields: $('fields'),
        occurredAt: $('occurredAt'),
        receivedAt: $('receivedAt'),
      })
      .returning()
      .prepare(UNNAMED),
  };
}
type Statements = ReturnType<typeof buildStatements>;

/** The reads and writes, over either the pool or a transaction's connection. */
function access(db: Db, built: Statements, changes: Change[] = []): StoreTx {
  return {
    async getTenant(id, opts) {
      const [row] = opts?.lock
        ? await db.select().from(tenants).where(eq(tenants.id, id)).for('update')
        : await built.getTenant.execute({ id });
      return row ?? null;
    },
    async getTenantBySlug(slug) {
      const [row] = await db.select().from(tenants).where(eq(tenants.slug, slug));
      return row ?? null;
    },
    async getProduct(key) {
      const [row] = await db.select().from(products).where(eq(products.key, key));
      return row ?? null;
    },
    async listProducts(opts) {
      return db
        .select()
        .from(products)
        .where(opts.requestableOnly ? eq(products.requestable, true) : undefined)
        .orderBy(sql`${products.key} COLLATE "C"`);
    },
    async listEntitlements(tenantId) {
      return db
        .select()
        .from(entitlements)
        .where(eq(entitlements.tenantId, tenantId))
        .orderBy(sql`${entitlements.product} COLLATE "C"`);
    },
    async getEntitlement(tenantId, product) {
      const [row] = await db
        .select()
        .from(entitlements)
        .where(and(eq(entitlements.tenantId, tenantId), eq(entitlements.product, product)));
      return row ?? null;
    },
    async findProductRequest(tenantId, product, status) {
      const [row] = await db
        .select()
        .from(productRequests)
        .where(
          and(eq(productRequests.tenantId, tenantId), eq(productRequests.product, product), eq(productRequests.status, status)),
        )
        .limit(1);
      return row ?? null;
    },
    async getApiKey(id, opts) {
      const q = db.select().from(apiKeys).where(eq(apiKeys.id, id));
      const [row] = opts?.lock ? await q.for('update') : await q;
      return row ?? null;
    },
    async getApiKeyByPrefix(prefix) {
      const [row] = await db.select().from(apiKeys).where(eq(apiKeys.prefix, prefix));
      return row ?? null;
    },
    async listApiKeys(tenantId, opts) {
      return db
        .select()
        .from(apiKeys)
        .where(and(eq(apiKeys.tenantId, tenantId), opts.includeRevoked ? undefined : isNull(apiKeys.revokedAt)))
        // NULLS LAST, as in api_keys_tenant_created (see queryAudit).
        .orderBy(sql`${apiKeys.createdAt} desc nulls last`, sql`${apiKeys.id} desc nulls last`);
    },
    async queryAudit(filter, after, limit) {
      const rows = await db
        .select()
        .from(auditLog)
        .where(and(...auditConditions(filter, after)))
        // NULLS LAST as in the keyset indexes (drizzle writes their DESC so): a plain DESC is
        // NULLS FIRST, which no index provides, and Postgres sorted the whole table per page.
        .orderBy(sql`${auditLog.occurredAt} desc nulls last`, sql`${auditLog.id} desc nulls last`)
        .limit(limit);
      return rows.map(toAuditEvent);
    },

    async insertTenant(t) {
      const [row] = await built.insertTenant.execute({ ...t });
      return row!;
    },
    async updateTenantStatus(id, status, at) {
      const [row] = await db.update(tenants).set({ status, updatedAt: at }).where(eq(tenants.id, id)).returning();
      if (!row) throw new StoreConstraintError('foreign_key');
      changes.push({ kind: 'tenant', id });
      return row;
    },
    async insertEntitlement(e) {
      const [row] = await db.insert(entitlements).values(e).returning();
      changes.push({ kind: 'tenant', id: e.tenantId });
      return row!;
    },
    async insertProductRequest(r) {
      const [row] = await db.insert(productRequests).values(r).returning();
      return row!;
    },
    async insertApiKey(k) {
      const [row] = await db.insert(apiKeys).values(k).returning();
      return row!;
    },
    async revokeApiKey(id, at) {
      const [row] = await db.update(apiKeys).set({ revokedAt: at }).where(eq(apiKeys.id, id)).returning();
      if (!row) throw new StoreConstraintError('foreign_key');
      changes.push({ kind: 'api_key', id });
      return row;
    },
    async insertAudit(e) {
      const [row] = await built.insertAudit.execute({
        id: e.id,
        tenantId: e.tenantId,
        product: e.product,
        action: e.action,
        crud: e.crud,
        actorId: e.actor.id,
        actorName: e.actor.name,
        actorType: e.actor.type,
        targetId: e.target?.id ?? null,
        targetType: e.target?.type ?? null,
        targetName: e.target?.name ?? null,
        description: e.description,
        sourceIp: e.sourceIp,
        isFailure: e.isFailure,
        fields: e.fields,
        occurredAt: e.occurredAt,
        receivedAt: e.receivedAt,
      });
      return toAuditEvent(row!);
    },
  };
}

/** Wraps every method so driver errors come out translated. */
function translated<T extends object>(target: T): T {
  return new Proxy(target, {
    get(obj, prop, receiver) {
      const value = Reflect.get(obj, prop, receiver);
      if (typeof value !== 'function') return value;
      return async (...args: unknown[]) => {
        try {
          return await value.apply(obj, args);
        } catch (err) {
          throw translatePgError(err);
        }
      };
    },
  });
}

export class PostgresStore implements Store {
  readonly kind = 'postgres' as const;
  readonly db: Db;
  private readonly root: StoreTx;
  private schemaCheck: (() => Promise<void>) | null = null;

  constructor(
    readonly pool: pg.Pool,
    readonly changes: ChangeFeed,
  ) {
    this.db = drizzle(pool);
    this.root = translated(access(this.db, buildStatements(this.db)));
  }

  getTenant: StoreTx['getTenant'] = (id, opts) => this.root.getTenant(id, opts);
  getTenantBySlug: StoreTx['getTenantBySlug'] = (slug) => this.root.getTenantBySlug(slug);
  getProduct: StoreTx['getProduct'] = (key) => this.root.getProduct(key);
  listProducts: StoreTx['listProducts'] = (opts) => this.root.listProducts(opts);
  listEntitlements: StoreTx['listEntitlements'] = (tenantId) => this.root.listEntitlements(tenantId);
  getEntitlement: StoreTx['getEntitlement'] = (t, p) => this.root.getEntitlement(t, p);
  findProductRequest: StoreTx['findProductRequest'] = (t, p, s) => this.root.findProductRequest(t, p, s);
  getApiKey: StoreTx['getApiKey'] = (id, opts) => this.root.getApiKey(id, opts);
  getApiKeyByPrefix: StoreTx['getApiKeyByPrefix'] = (prefix) => this.root.getApiKeyByPrefix(prefix);
  listApiKeys: StoreTx['listApiKeys'] = (t, opts) => this.root.listApiKeys(t, opts);
  queryAudit: StoreTx['queryAudit'] = (f, a, l) => this.root.queryAudit(f, a, l);
  insertAudit: StoreTx['insertAudit'] = (e) => this.root.insertAudit(e);

  /**
   * BEGIN … COMMIT on a client of our own (not drizzle's db.transaction, which leaks the
   * client when BEGIN fails, awaits ROLLBACK behind a timed-out query, and hands a timed-out
   * client back to the pool). A connection that fails or times out mid-transaction is in an
   * unknown state: it gets no ROLLBACK (Postgres rolls back when the connection goes) and is
   * discarded, never reused, so an outage neither drains the pool nor outlasts itself.
   */
  async transaction<T>(fn: (tx: StoreTx) => Promise<T>): Promise<T> {
    let client: pg.PoolClient;
    try {
      client = await this.pool.connect();
    } catch (err) {
      throw translatePgError(err);
    }
    let broken: Error | undefined;
    const lost = (err: unknown) => translatePgError(err) instanceof StoreUnavailableError;
    try {
      const changes: Change[] = [];
      const { db, built } = this.handleOf(client);
      await client.query('BEGIN');
      let value: T;
      try {
        value = await fn(translated(access(db, built, changes)));
        // Other instances hear of the change exactly when it commits.
        for (const change of changes) await db.execute(sql`SELECT pg_notify(${CHANGE_CHANNEL}, ${JSON.stringify(change)})`);
        await client.query('COMMIT');
      } catch (err) {
        if (lost(err)) throw err;
        try {
          await client.query('ROLLBACK');
        } catch (rollbackErr) {
          // The connection went after all: the transaction dies with it; report the first error.
          broken = rollbackErr instanceof Error ? rollbackErr : new Error('rollback failed');
        }
        throw err;
      }
      this.changes.emitLocal(changes);
      return value;
    } catch (err) {
      if (lost(err)) broken ??= err instanceof Error ? err : new Error('connection lost');
      throw translatePgError(err);
    } finally {
      client.release(broken);
    }
  }

  /** A connection's drizzle handle and built statements, made on its first transaction. */
  private readonly handles = new WeakMap<pg.PoolClient, { db: Db; built: Statements }>();
  private handleOf(client: pg.PoolClient) {
    let handle = this.handles.get(client);
    if (!handle) {
      const db = drizzle(client);
      handle = { db, built: buildStatements(db) };
      this.handles.set(client, handle);
    }
    return handle;
  }

  async touchApiKeys(uses: ReadonlyArray<{ id: string; at: Date }>): Promise<void> {
    if (uses.length === 0) return;
    const ids = uses.map((u) => u.id);
    const times = uses.map((u) => u.at.toISOString());
    try {
      await this.pool.query(
        `UPDATE api_keys AS k SET last_used_at = u.at
           FROM unnest($1::uuid[], $2::timestamptz[]) AS u(id, at)
          WHERE k.id = u.id AND (k.last_used_at IS NULL OR k.last_used_at < u.at)`,
        [ids, times],
      );
    } catch (err) {
      throw translatePgError(err);
    }
  }

  async claimIdempotencyKey(
    record: IdempotencyRecord,
    opts: { expiredBefore: Date; abandonedBefore: Date },
  ): Promise<IdempotencyRecord | null> {
    try {
      const claimed = await this.db
        .insert(idempotencyKeys)
        .values(record)
        .onConflictDoUpdate({
          target: [idempotencyKeys.scope, idempotencyKeys.key],
          set: { requestHash: record.requestHash, state: 'pending', response: null, createdAt: record.createdAt, updatedAt: record.updatedAt },
          setWhere: sql`${idempotencyKeys.createdAt} < ${opts.expiredBefore.toISOString()}::timestamptz
            OR (${idempotencyKeys.state} = 'pending' AND ${idempotencyKeys.updatedAt} < ${opts.abandonedBefore.toISOString()}::timestamptz)`,
        })
        .returning({ scope: idempotencyKeys.scope });
      if (claimed.length > 0) return null;
      const [held] = await this.db
        .select()
        .from(idempotencyKeys)
        .where(and(eq(idempotencyKeys.scope, record.scope), eq(idempotencyKeys.key, record.key)));
      // Released between the two statements: it is free now, so try again.
      return held ? { ...held, state: held.state as IdempotencyRecord['state'] } : this.claimIdempotencyKey(record, opts);
    } catch (err) {
      throw translatePgError(err);
    }
  }

  async completeIdempotencyKey(scope: string, key: string, response: unknown, at: Date): Promise<void> {
    try {
      await this.db
        .update(idempotencyKeys)
        .set({ state: 'done', response, updatedAt: at })
        .where(and(eq(idempotencyKeys.scope, scope), eq(idempotencyKeys.key, key)));
    } catch (err) {
      throw translatePgError(err);
    }
  }

  async releaseIdempotencyKey(scope: string, key: string): Promise<void> {
    try {
      await this.db.delete(idempotencyKeys).where(and(eq(idempotencyKeys.scope, scope), eq(idempotencyKeys.key, key)));
    } catch (err) {
      throw translatePgError(err);
    }
  }

  /** Until `check` passes once, ping() runs it too (for a server that started while the database was down). */
  deferSchemaCheck(check: () => Promise<void>): void {
    this.schemaCheck = check;
  }

  async ping(): Promise<void> {
    try {
      await this.pool.query('SELECT 1');
    } catch (err) {
      throw translatePgError(err);
    }
    if (this.schemaCheck) {
      await this.schemaCheck();
      this.schemaCheck = null;
    }
  }

  async close(): Promise<void> {
    await this.changes.close();
    await this.pool.end();
  }
}

