/**
 * "No change without its event, no event without its change": every state-changing endpoint
 * writes its change and its audit event in one transaction. A failure injected into the audit
 * insert (or at commit, after both writes) must leave nothing behind and answer a plain JSON
 * 500; once the fault is gone the same request succeeds with exactly one event. A rejected
 * request (404, 409) leaves no event either.
 *
 *   - Postgres: the faults are triggers in the test database — a BEFORE INSERT trigger on
 *     audit_log that raises for one action, and a deferred constraint trigger that raises at
 *     COMMIT, when the change and its event have both been written.
 *   - Memory: there is no database, so a test-only Store decorator hands the domain a
 *     transaction whose insertAudit throws (or that throws once `fn` is done) for one action.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { MemoryStore } from '../src/db/memory-store.js';
import type { IdempotencyRecord, Store, StoreTx } from '../src/db/store.js';
import { provisionDatabase, type TestDatabase } from './harness/database.js';
import { auditOf, newTenant, randomSlug } from './harness/each-store.js';
import type { HttpResponse } from './harness/http.js';
import { startServer, type StoreKind, type TestServer } from './harness/server.js';

/** Where a transaction fails: in the audit insert itself, or at commit after both writes. */
type Fault = 'audit-insert' | 'commit';

interface Faults {
  /** Transactions that record `action` fail at `where` until `clear()`. */
  arm(action: string, where: Fault): Promise<void>;
  clear(): Promise<void>;
  /** A count straight from the database (Postgres only; null on the memory store). */
  count(sql: string, params?: unknown[]): Promise<number | null>;
  close(): Promise<void>;
}

class InjectedFailure extends Error {
  override readonly name = 'InjectedFailure';
}

/**
 * A Store that delegates everything to `inner`, except that its transactions fail on demand:
 * `insertAudit` throws for an armed action, or the transaction throws after `fn` returned
 * (both writes made) — inside the inner transaction, so the inner store must undo both.
 */
class FaultyStore implements Store {
  readonly armed = new Map<string, Fault>();
  constructor(private readonly inner: Store) {}

  get kind() {
    return this.inner.kind;
  }
  get changes() {
    return this.inner.changes;
  }

  getTenant: Store['getTenant'] = (id, opts) => this.inner.getTenant(id, opts);
  getTenantBySlug: Store['getTenantBySlug'] = (slug) => this.inner.getTenantBySlug(slug);
  getProduct: Store['getProduct'] = (key) => this.inner.getProduct(key);
  listProducts: Store['listProducts'] = (opts) => this.inner.listProducts(opts);
  listEntitlements: Store['listEntitlements'] = (tenantId) => this.inner.listEntitlements(tenantId);
  getEntitlement: Store['getEntitlement'] = (tenantId, product) => this.inner.getEntitlement(tenantId, product);
  findProductRequest: Store['findProductRequest'] = (t, p, s) => this.inner.findProductRequest(t, p, s);
  getApiKey: Store['getApiKey'] = (id, opts) => this.inner.getApiKey(id, opts);
  getApiKeyByPrefix: Store['getApiKeyByPrefix'] = (prefix) => this.inner.getApiKeyByPrefix(prefix);
  listApiKeys: Store['listApiKeys'] = (tenantId, opts) => this.inner.listApiKeys(tenantId, opts);
  queryAudit: Store['queryAudit'] = (filter, after, limit) => this.inner.queryAudit(filter, after, limit);
  // A lone append is a one-write transaction here, so the same faults reach it.
  insertAudit: Store['insertAudit'] = (event) => this.transaction((tx) => tx.insertAudit(event));
  claimIdempotencyKey = (record: IdempotencyRecord, opts: { expiredBefore: Date; abandonedBefore: Date }) =>
    this.inner.claimIdempotencyKey(record, opts);
  completeIdempotencyKey: Store['completeIdempotencyKey'] = (scope, key, response, at) =>
    this.inner.completeIdempotencyKey(scope, key, response, at);
  releaseIdempotencyKey: Store['releaseIdempotencyKey'] = (scope, key) => this.inner.releaseIdempotencyKey(scope, key);
  touchApiKeys: Store['touchApiKeys'] = (uses) => this.inner.touchApiKeys(uses);
  ping: Store['ping'] = () => this.inner.ping();
  close: Store['close'] = () => this.inner.close();

  transaction<T>(fn: (tx: StoreTx) => Promise<T>): Promise<T> {
    return this.inner.transaction(async (tx) => {
      const recorded: string[] = [];
      const faulty: StoreTx = {
        ...tx,
        insertAudit: async (event) => {
          if (this.armed.get(event.action) === 'audit-insert') throw new InjectedFailure(`injected: audit insert of ${event.action}`);
          const stored = await tx.insertAudit(event);
          recorded.push(event.action);
          return stored;
        },
      };
      const result = await fn(faulty);
      const late = recorded.find((action) => this.armed.get(action) === 'commit');
      if (late) throw new InjectedFailure(`injected: commit of ${late}`);
      return result;
    });
  }
}

async function memorySetup(): Promise<{ server: TestServer; faults: Faults }> {
  const store = new FaultyStore(new MemoryStore());
  const server = await startServer('memory', { store });
  const faults: Faults = {
    arm: async (action, where) => void store.armed.set(action, where),
    clear: async () => store.armed.clear(),
    count: async () => null,
    close: () => server.close(),
  };
  return { server, faults };
}

async function postgresSetup(): Promise<{ server: TestServer; faults: Faults }> {
  const db: TestDatabase = await provisionDatabase();
  const server = await startServer('postgres', { databaseUrl: db.url });
  const admin = new pg.Client({ connectionString: db.url });
  await admin.connect();
  await admin.query(`
    CREATE FUNCTION test_injected_failure() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      RAISE EXCEPTION 'injected failure: % of audit_log row %', TG_NAME, NEW.id;
    END
    $$`);
  let armed: string[] = [];
  const literal = (text: string) => `'${text.replace(/'/g, "''")}'`;
  const faults: Faults = {
    async arm(action, where) {
      const name = `test_fail_${armed.length}`;
      armed.push(name);
      await admin.query(
        where === 'audit-insert'
          ? `CREATE TRIGGER ${name} BEFORE INSERT ON audit_log FOR EACH ROW
               WHEN (NEW.action = ${literal(action)}) EXECUTE FUNCTION test_injected_failure()`
          : // Runs at COMMIT: after the change and its event have both been written.
            `CREATE CONSTRAINT TRIGGER ${name} AFTER INSERT ON audit_log DEFERRABLE INITIALLY DEFERRED FOR EACH ROW
               WHEN (NEW.action = ${literal(action)}) EXECUTE FUNCTION test_injected_failure()`,
      );
    },
    async clear() {
      for (const name of armed) await admin.query(`DROP TRIGGER ${name} ON audit_log`);
      armed = [];
    },
    async count(sql, params = []) {
      const { rows } = await admin.query<{ n: string }>(sql, params);
      return Number(rows[0]!.n);
    },
    async close() {
      await admin.end();
      await server.close();
      await db.drop();
    },
  };
  return { server, faults };
}

/** A plain JSON 500 that gives nothing away (no SQL, no trigger text, no stack). */
function expectInternalError(res: HttpResponse) {
  expect(res.status, res.text).toBe(500);
  expect(res.headers.get('content-type')).toMatch(/^application\/json\b/);
  expect(res.body).toEqual({ code: 'INTERNAL_SERVER_ERROR', message: 'Internal server error' });
  expect(res.text).not.toMatch(/injected|audit_log|trigger|stack|P0001/i);
}

/** Every audit event in the log, all tenants. */
async function totalAuditEvents(server: TestServer): Promise<number> {
  let total = 0;
  let cursor: string | null = null;
  do {
    const q = new URLSearchParams({ limit: '500' });
    if (cursor) q.set('cursor', cursor);
    const page = await server.http.get(`/v1/audit?${q}`);
    expect(page.status, page.text).toBe(200);
    total += page.body.items.length;
    cursor = page.body.next_cursor;
  } while (cursor);
  return total;
}

const FAULTS: Fault[] = ['audit-insert', 'commit'];

describe.each<StoreKind>(['memory', 'postgres'])('atomicity [%s store]', (kind) => {
  let server: TestServer;
  let faults: Faults;
  const t = () => server;
  const pgOnly = (n: number) => (kind === 'postgres' ? n : null);

  beforeAll(async () => {
    ({ server, faults } = kind === 'memory' ? await memorySetup() : await postgresSetup());
  }, 120_000);
  afterAll(async () => {
    await faults?.clear();
    await faults?.close();
  }, 60_000);

  describe.each(FAULTS)('a failure at %s rolls the change back', (where) => {
    it('POST /v1/tenants: no tenant row, no event; then the same request succeeds', async () => {
      const slug = randomSlug('atom');
      const before = await totalAuditEvents(t());
      await faults.arm('tenant.created', where);
      try {
        expectInternalError(await t().http.post('/v1/tenants', { slug, name: 'Atomic' }));
        expect((await t().http.get(`/v1/tenants/by-slug/${slug}`)).status).toBe(404);
        expect(await faults.count('SELECT count(*) AS n FROM tenants WHERE slug = $1', [slug])).toBe(pgOnly(0));
        expect(await totalAuditEvents(t())).toBe(before);
      } finally {
        await faults.clear();
      }
      const created = await t().http.post('/v1/tenants', { slug, name: 'Atomic' });
      expect(created.status, created.text).toBe(201);
      expect(await auditOf(t(), created.body.id, 'tenant.created')).toHaveLength(1);
      expect(await totalAuditEvents(t())).toBe(before + 1);
    });

    it('activate: status stays trial, no event; then it activates', async () => {
      const tenant = await newTenant(t());
      await faults.arm('tenant.activated', where);
      try {
        expectInternalError(await t().http.post(`/v1/tenants/${tenant.id}/activate`));
        const now = (await t().http.get(`/v1/tenants/${tenant.id}`)).body;
        expect(now).toEqual(tenant);
        expect(await faults.count(`SELECT count(*) AS n FROM tenants WHERE id = $1 AND status = 'trial'`, [tenant.id])).toBe(pgOnly(1));
        expect(await auditOf(t(), tenant.id, 'tenant.activated')).toHaveLength(0);
      } finally {
        await faults.clear();
      }
      const activated = await t().http.post(`/v1/tenants/${tenant.id}/activate`);
      expect(activated.status, activated.text).toBe(200);
      expect(activated.body.status).toBe('active');
      expect(await auditOf(t(), tenant.id, 'tenant.activated')).toHaveLength(1);
    });

    it('cancel: status stays active, keys keep verifying, no event; then it cancels', async () => {
      const tenant = await newTenant(t(), { status: 'active' });
      const key = await t().http.post('/v1/api-keys', { tenant_id: tenant.id, name: 'before cancel' });
      expect(key.status, key.text).toBe(201);
      const verify = () => t().http.post('/v1/internal/api-keys/verify', { key: key.body.plaintext });
      expect((await verify()).body.valid).toBe(true);
      await faults.arm('tenant.canceled', where);
      try {
        expectInternalError(await t().http.post(`/v1/tenants/${tenant.id}/cancel`));
        expect((await t().http.get(`/v1/tenants/${tenant.id}`)).body).toEqual(tenant);
        expect(await faults.count(`SELECT count(*) AS n FROM tenants WHERE id = $1 AND status = 'active'`, [tenant.id])).toBe(pgOnly(1));
        expect((await verify()).body.valid).toBe(true);
        expect(await auditOf(t(), tenant.id, 'tenant.canceled')).toHaveLength(0);
      } finally {
        await faults.clear();
      }
      const canceled = await t().http.post(`/v1/tenants/${tenant.id}/cancel`);
      expect(canceled.status, canceled.text).toBe(200);
      expect(canceled.body.status).toBe('frozen');
      expect((await verify()).body).toEqual({ valid: false, code: 'TENANT_FROZEN' });
      expect(await auditOf(t(), tenant.id, 'tenant.canceled')).toHaveLength(1);
    });

    it('catalog request: no pending request, no event; then the same request is 201 (not 409 pending)', async () => {
      const tenant = await newTenant(t());
      const body = { tenant_id: tenant.id, product: 'analytics', note: 'please' };
      await faults.arm('catalog.requested', where);
      try {
        expectInternalError(await t().http.post('/v1/catalog/request', body));
        expect(await faults.count('SELECT count(*) AS n FROM product_requests WHERE tenant_id = $1', [tenant.id])).toBe(pgOnly(0));
        expect(await t().store.findProductRequest(tenant.id, 'analytics', 'pending')).toBeNull();
        expect(await auditOf(t(), tenant.id, 'catalog.requested')).toHaveLength(0);
      } finally {
        await faults.clear();
      }
      const requested = await t().http.post('/v1/catalog/request', body);
      expect(requested.status, requested.text).toBe(201);
      expect(await auditOf(t(), tenant.id, 'catalog.requested')).toHaveLength(1);
    });

    it('trial request: no entitlement, no event; then the trial starts', async () => {
      const tenant = await newTenant(t());
      const body = { tenant_id: tenant.id, product: 'automation' };
      await faults.arm('entitlement.trial_started', where);
      try {
        expectInternalError(await t().http.post('/v1/catalog/trial-request', body));
        expect((await t().http.get(`/v1/entitlements?tenant_id=${tenant.id}`)).body).toEqual({ items: [] });
        expect(await faults.count('SELECT count(*) AS n FROM entitlements WHERE tenant_id = $1', [tenant.id])).toBe(pgOnly(0));
        expect(await auditOf(t(), tenant.id, 'entitlement.trial_started')).toHaveLength(0);
      } finally {
        await faults.clear();
      }
      const started = await t().http.post('/v1/catalog/trial-request', body);
      expect(started.status, started.text).toBe(201);
      expect((await t().http.get(`/v1/entitlements?tenant_id=${tenant.id}`)).body.items).toHaveLength(1);
      expect(await auditOf(t(), tenant.id, 'entitlement.trial_started')).toHaveLength(1);
    });

    it('API key create: no key, no event; then a key is issued', async () => {
      const tenant = await newTenant(t(), { status: 'active' });
      const body = { tenant_id: tenant.id, name: 'atomic', product: 'analytics', scopes: ['read'] };
      await faults.arm('api_key.created', where);
      try {
        expectInternalError(await t().http.post('/v1/api-keys', body));
        const listed = await t().http.get(`/v1/api-keys?tenant_id=${tenant.id}&include_revoked=true`);
        expect(listed.body).toEqual({ items: [] });
        expect(await faults.count('SELECT count(*) AS n FROM api_keys WHERE tenant_id = $1', [tenant.id])).toBe(pgOnly(0));
        expect(await auditOf(t(), tenant.id, 'api_key.created')).toHaveLength(0);
      } finally {
        await faults.clear();
      }
      const created = await t().http.post('/v1/api-keys', body);
      expect(created.status, created.text).toBe(201);
      expect((await t().http.get(`/v1/api-keys?tenant_id=${tenant.id}`)).body.items).toHaveLength(1);
      expect(await auditOf(t(), tenant.id, 'api_key.created')).toHaveLength(1);
    });

    it('API key revoke: the key stays live (and verifies), no event; then it is revoked', async () => {
      const tenant = await newTenant(t(), { status: 'active' });
      const created = await t().http.post('/v1/api-keys', { tenant_id: tenant.id, name: 'to revoke' });
      expect(created.status, created.text).toBe(201);
      const id = created.body.api_key.id as string;
      const verify = () => t().http.post('/v1/internal/api-keys/verify', { key: created.body.plaintext });
      expect((await verify()).body.valid).toBe(true);
      await faults.arm('api_key.revoked', where);
      try {
        expectInternalError(await t().http.delete(`/v1/api-keys/${id}`));
        const listed = await t().http.get(`/v1/api-keys?tenant_id=${tenant.id}`);
        expect(listed.body.items).toEqual([created.body.api_key]);
        expect(await faults.count('SELECT count(*) AS n FROM api_keys WHERE id = $1 AND revoked_at IS NULL', [id])).toBe(pgOnly(1));
        expect((await verify()).body.valid).toBe(true);
        expect(await auditOf(t(), tenant.id, 'api_key.revoked')).toHaveLength(0);
      } finally {
        await faults.clear();
      }
      const revoked = await t().http.delete(`/v1/api-keys/${id}`);
      expect(revoked.status, revoked.text).toBe(200);
      expect(revoked.body.revoked_at).toEqual(expect.any(String));
      expect((await verify()).body).toEqual({ valid: false, code: 'REVOKED' });
      expect(await auditOf(t(), tenant.id, 'api_key.revoked')).toHaveLength(1);
    });

    it('POST /v1/audit: a failed append leaves no event; the retry appends one', async () => {
      const tenant = await newTenant(t());
      const body = { tenant_id: tenant.id, action: 'atomic.append', actor: { id: 'svc' } };
      await faults.arm('atomic.append', where);
      try {
        expectInternalError(await t().http.post('/v1/audit', body));
        expect(await auditOf(t(), tenant.id, 'atomic.append')).toHaveLength(0);
      } finally {
        await faults.clear();
      }
      expect((await t().http.post('/v1/audit', body)).status).toBe(201);
      expect(await auditOf(t(), tenant.id, 'atomic.append')).toHaveLength(1);
    });
  });

  it('over tRPC the failure is a JSON error without internals, and the Idempotency-Key is released', async () => {
    const slug = randomSlug('atom');
    const headers = { 'idempotency-key': `atomic-${slug}` };
    await faults.arm('tenant.created', 'audit-insert');
    try {
      const res = await t().http.post('/trpc/tenants.create', { slug, name: 'Atomic' }, { headers });
      expect(res.status, res.text).toBe(500);
      expect(res.body.error).toMatchObject({ message: 'Internal server error', data: { code: 'INTERNAL_SERVER_ERROR', httpStatus: 500 } });
      expect(res.text).not.toMatch(/injected|audit_log|trigger|stack|P0001/i);
    } finally {
      await faults.clear();
    }
    // The failure was not remembered: the same key and body now run (and create the tenant).
    const retried = await t().http.post('/trpc/tenants.create', { slug, name: 'Atomic' }, { headers });
    expect(retried.status, retried.text).toBe(200);
    expect(retried.body.result.data.slug).toBe(slug);
  });

  it('a rejected request (404, 409, 400) writes no audit event', async () => {
    const trial = await newTenant(t());
    const active = await newTenant(t(), { status: 'active' });
    const frozen = await newTenant(t(), { status: 'frozen' });
    const key = await t().http.post('/v1/api-keys', { tenant_id: active.id, name: 'revoked' });
    expect((await t().http.delete(`/v1/api-keys/${key.body.api_key.id}`)).status).toBe(200);
    const started = await t().http.post('/v1/catalog/trial-request', { tenant_id: trial.id, product: 'compliance' });
    expect(started.status).toBe(201);
    const requested = await t().http.post('/v1/catalog/request', { tenant_id: trial.id, product: 'analytics' });
    expect(requested.status).toBe(201);
    const before = await totalAuditEvents(t());
    const missing = '6f1c0c5e-0000-4000-8000-000000000000';

    // One after another: each must be rejected on its own merits.
    const rejected: Array<[number, () => Promise<HttpResponse>]> = [
      [409, () => t().http.post('/v1/tenants', { slug: trial.slug, name: 'Taken' })],
      [400, () => t().http.post('/v1/tenants', { slug: 'X', name: 'Bad' })],
      [409, () => t().http.post(`/v1/tenants/${active.id}/activate`)],
      [409, () => t().http.post(`/v1/tenants/${trial.id}/cancel`)],
      [409, () => t().http.post(`/v1/tenants/${frozen.id}/cancel`)],
      [404, () => t().http.post(`/v1/tenants/${missing}/activate`)],
      [409, () => t().http.post('/v1/catalog/trial-request', { tenant_id: trial.id, product: 'compliance' })],
      [409, () => t().http.post('/v1/catalog/trial-request', { tenant_id: trial.id, product: 'enterprise-sso' })],
      [409, () => t().http.post('/v1/catalog/trial-request', { tenant_id: frozen.id, product: 'analytics' })],
      [404, () => t().http.post('/v1/catalog/trial-request', { tenant_id: trial.id, product: 'internal-tools' })],
      [404, () => t().http.post('/v1/catalog/trial-request', { tenant_id: missing, product: 'analytics' })],
      [409, () => t().http.post('/v1/catalog/request', { tenant_id: trial.id, product: 'analytics' })],
      [409, () => t().http.post('/v1/catalog/request', { tenant_id: frozen.id, product: 'analytics' })],
      [404, () => t().http.post('/v1/catalog/request', { tenant_id: trial.id, product: 'nope' })],
      [409, () => t().http.post('/v1/api-keys', { tenant_id: frozen.id, name: 'k' })],
      [404, () => t().http.post('/v1/api-keys', { tenant_id: active.id, name: 'k', product: 'nope' })],
      [404, () => t().http.post('/v1/api-keys', { tenant_id: missing, name: 'k' })],
      [404, () => t().http.delete(`/v1/api-keys/${missing}`)],
      [404, () => t().http.post('/v1/audit', { tenant_id: missing, action: 'x.y', actor: { id: 'svc' } })],
    ];
    for (const [status, send] of rejected) {
      const res = await send();
      expect(res.status, res.text).toBe(status);
    }
    // Revoking an already revoked key succeeds but changes nothing, so it records nothing.
    expect((await t().http.delete(`/v1/api-keys/${key.body.api_key.id}`)).status).toBe(200);
    expect(await totalAuditEvents(t())).toBe(before);
    expect(await faults.count('SELECT count(*) AS n FROM audit_log')).toBe(pgOnly(before));
  });
});
