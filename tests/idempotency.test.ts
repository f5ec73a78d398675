/**
 * Idempotency-Key on the creating POSTs, on both stores (src/domain/idempotency.ts):
 *   - same key + same body within 24 h replays the first answer (status, body, id): one row,
 *     one audit event; a new API key is never replayed (409 naming the key, no plaintext);
 *   - same key + another body (or another operation) → 409; a key still running → 409;
 *   - keys are scoped per caller;
 *   - failures are not remembered: a request that failed releases its key, so a retry with
 *     the same key and body runs again (and may now succeed);
 *   - a malformed key is 400; the header works over tRPC too, and REST and tRPC share keys;
 *   - after 24 h the key is free again; a claim left pending for over a minute is taken over.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PostgresStore } from '../src/db/postgres-store.js';
import type { IdempotencyRecord, Store } from '../src/db/store.js';
import { IDEMPOTENCY_TTL_MS, runIdempotently } from '../src/domain/idempotency.js';
import { auditOf, eachStore, newTenant, randomSlug } from './harness/each-store.js';
import type { HttpResponse } from './harness/http.js';
import { OidcIssuer } from './harness/oidc-issuer.js';
import { startServer, type StoreKind, type TestServer } from './harness/server.js';
import { fire, onPglite } from './harness/single-session.js';

/** With auth off every caller is the dev principal, whose keys live in this scope. */
const DEV_SCOPE = 'user:dev';
const HOUR = 60 * 60_000;

const newKey = (label = 'k') => `${label}-${randomBytes(8).toString('hex')}`;
const withKey = (key: string) => ({ headers: { 'idempotency-key': key } });

function expectConflict(res: HttpResponse, message: RegExp) {
  expect(res.status, res.text).toBe(409);
  expect(res.body).toEqual({ code: 'CONFLICT', message: expect.stringMatching(message) });
}

/** Everything the store holds for idempotency, as text (to look for secrets in it). */
async function storedIdempotencyText(server: TestServer, kind: StoreKind): Promise<string> {
  if (kind === 'postgres') {
    const { rows } = await (server.store as PostgresStore).pool.query<{ row: string }>(
      'SELECT (scope || key || request_hash || state || coalesce(response::text, \'\')) AS row FROM idempotency_keys',
    );
    return rows.map((r) => r.row).join('\n');
  }
  const records = Reflect.get(server.store, 'idempotency') as Map<string, IdempotencyRecord>;
  expect(records).toBeInstanceOf(Map);
  return JSON.stringify([...records.values()]);
}

/** A record planted straight into the store, as if an earlier request had claimed the key. */
async function plant(store: Store, key: string, fields: Partial<IdempotencyRecord> & { ageMs: number }) {
  const at = new Date(Date.now() - fields.ageMs);
  const record: IdempotencyRecord = {
    scope: DEV_SCOPE,
    key,
    requestHash: 'planted-by-a-test',
    state: 'done',
    response: { planted: true },
    createdAt: at,
    updatedAt: at,
    ...fields,
  };
  // Nothing holds the key yet, so the claim inserts the record as given.
  expect(await store.claimIdempotencyKey(record, { expiredBefore: new Date(0), abandonedBefore: new Date(0) })).toBeNull();
}

eachStore('idempotency', (t, kind) => {
  describe('same key, same body: the first answer is replayed', () => {
    it('POST /v1/tenants: same 201 and body, one tenant, one event', async () => {
      const key = newKey();
      const body = { slug: randomSlug('idem'), name: 'Once' };
      const first = await t().http.post('/v1/tenants', body, withKey(key));
      const second = await t().http.post('/v1/tenants', body, withKey(key));
      expect(first.status, first.text).toBe(201);
      expect(second.status, second.text).toBe(201);
      expect(second.body).toEqual(first.body);
      expect(second.headers.get('content-type')).toMatch(/^application\/json\b/);
      expect((await t().http.get(`/v1/tenants/by-slug/${body.slug}`)).body.id).toBe(first.body.id);
      expect(await auditOf(t(), first.body.id, 'tenant.created')).toHaveLength(1);
      // Without the key the same body is simply a second create.
      expectConflict(await t().http.post('/v1/tenants', body), /already taken/);
    });

    it('the replay is the answer as it was, not the resource as it is now', async () => {
      const key = newKey();
      const body = { slug: randomSlug('idem'), name: 'Then' };
      const first = await t().http.post('/v1/tenants', body, withKey(key));
      expect(first.status, first.text).toBe(201);
      expect((await t().http.post(`/v1/tenants/${first.body.id}/activate`)).status).toBe(200);
      const replay = await t().http.post('/v1/tenants', body, withKey(key));
      expect(replay.status).toBe(201);
      expect(replay.body).toEqual(first.body);
      expect(replay.body.status).toBe('trial');
    });

    it('POST /v1/catalog/trial-request: same entitlement, one row, one event', async () => {
      const tenant = await newTenant(t());
      const key = newKey();
      const body = { tenant_id: tenant.id, product: 'analytics' };
      const first = await t().http.post('/v1/catalog/trial-request', body, withKey(key));
      const second = await t().http.post('/v1/catalog/trial-request', body, withKey(key));
      expect(first.status, first.text).toBe(201);
      expect(second.status, second.text).toBe(201);
      expect(second.body).toEqual(first.body);
      expect((await t().http.get(`/v1/entitlements?tenant_id=${tenant.id}`)).body.items).toHaveLength(1);
      expect(await auditOf(t(), tenant.id, 'entitlement.trial_started')).toHaveLength(1);
      expectConflict(await t().http.post('/v1/catalog/trial-request', body), /one trial per product/);
    });

    it('POST /v1/catalog/request: same request, one row, one event', async () => {
      const tenant = await newTenant(t());
      const key = newKey();
      const body = { tenant_id: tenant.id, product: 'compliance', note: 'call me' };
      const first = await t().http.post('/v1/catalog/request', body, withKey(key));
      const second = await t().http.post('/v1/catalog/request', body, withKey(key));
      expect(first.status, first.text).toBe(201);
      expect(second.status, second.text).toBe(201);
      expect(second.body).toEqual(first.body);
      expect(await auditOf(t(), tenant.id, 'catalog.requested')).toHaveLength(1);
      expectConflict(await t().http.post('/v1/catalog/request', body), /already pending/);
    });

    it('POST /v1/audit: same event, appended once', async () => {
      const tenant = await newTenant(t());
      const key = newKey();
      const body = {
        tenant_id: tenant.id,
        action: 'idem.append',
        actor: { id: 'svc-a' },
        fields: { a: '1' },
        occurred_at: '2024-05-01T10:00:00.123456+02:00',
      };
      const first = await t().http.post('/v1/audit', body, withKey(key));
      const second = await t().http.post('/v1/audit', body, withKey(key));
      expect(first.status, first.text).toBe(201);
      expect(second.status, second.text).toBe(201);
      expect(second.body).toEqual(first.body);
      expect(await auditOf(t(), tenant.id, 'idem.append')).toHaveLength(1);
      // Without a key, each append is a new event.
      expect((await t().http.post('/v1/audit', body)).status).toBe(201);
      expect(await auditOf(t(), tenant.id, 'idem.append')).toHaveLength(2);
    });

    it('POST /v1/api-keys: the retry is 409 naming the key, never the plaintext again; one key exists', async () => {
      const tenant = await newTenant(t(), { status: 'active' });
      const key = newKey();
      const body = { tenant_id: tenant.id, name: 'ci', scopes: ['read'] };
      const first = await t().http.post('/v1/api-keys', body, withKey(key));
      expect(first.status, first.text).toBe(201);
      const { plaintext } = first.body as { plaintext: string };
      const second = await t().http.post('/v1/api-keys', body, withKey(key));
      expectConflict(second, new RegExp(`already issued API key ${first.body.api_key.id}.*shown only once`));
      expect(second.text).not.toContain(plaintext);
      expect(second.text).not.toContain(plaintext.slice(3));
      const listed = await t().http.get(`/v1/api-keys?tenant_id=${tenant.id}&include_revoked=true`);
      expect(listed.body.items.map((k: { id: string }) => k.id)).toEqual([first.body.api_key.id]);
      expect(await auditOf(t(), tenant.id, 'api_key.created')).toHaveLength(1);
      // Neither the idempotency record nor anything else stored holds the plaintext.
      const stored = await storedIdempotencyText(t(), kind);
      expect(stored).toContain(first.body.api_key.id);
      expect(stored).not.toContain(plaintext);
      expect(stored).not.toContain(plaintext.slice(3));
      if (kind === 'postgres') {
        const pool = (t().store as PostgresStore).pool;
        const { rows } = await pool.query<{ response: string }>(
          'SELECT response::text AS response FROM idempotency_keys WHERE key = $1',
          [key],
        );
        expect(rows.map((r) => JSON.parse(r.response))).toEqual([{ api_key_id: first.body.api_key.id }]);
        // No row of any table holds the plaintext's 22 secret characters (the key id, as a control, is found).
        const rowsHolding = async (text: string) => {
          const found = await pool.query<{ n: string }>(
            `SELECT (SELECT count(*) FROM idempotency_keys r WHERE position($1 in r::text) > 0)
                  + (SELECT count(*) FROM api_keys r WHERE position($1 in r::text) > 0)
                  + (SELECT count(*) FROM audit_log r WHERE position($1 in r::text) > 0)
                  + (SELECT count(*) FROM tenants r WHERE position($1 in r::text) > 0) AS n`,
            [text],
          );
          return Number(found.rows[0]!.n);
        };
        expect(await rowsHolding(plaintext.slice(3))).toBe(0);
        expect(await rowsHolding(first.body.api_key.id)).toBe(3);
      }
      // The key works, and verify is unaffected by the refused replay.
      expect((await t().http.post('/v1/internal/api-keys/verify', { key: plaintext })).body.valid).toBe(true);
    });
  });

  describe('same key, something else', () => {
    it('another body → 409 (and nothing is created)', async () => {
      const key = newKey();
      const slug = randomSlug('idem');
      expect((await t().http.post('/v1/tenants', { slug, name: 'One' }, withKey(key))).status).toBe(201);
      const other = randomSlug('idem');
      expectConflict(await t().http.post('/v1/tenants', { slug: other, name: 'Two' }, withKey(key)), /different request/);
      expectConflict(await t().http.post('/v1/tenants', { slug, name: 'One, renamed' }, withKey(key)), /different request/);
      expect((await t().http.get(`/v1/tenants/by-slug/${other}`)).status).toBe(404);
    });

    it('another operation with an equal-looking body → 409', async () => {
      const tenant = await newTenant(t());
      const key = newKey();
      const body = { tenant_id: tenant.id, product: 'automation' };
      expect((await t().http.post('/v1/catalog/request', body, withKey(key))).status).toBe(201);
      expectConflict(await t().http.post('/v1/catalog/trial-request', body, withKey(key)), /different request/);
      expect((await t().http.get(`/v1/entitlements?tenant_id=${tenant.id}`)).body.items).toEqual([]);
    });

    it('the body is compared after parsing: unknown fields and surrounding blanks do not matter', async () => {
      const key = newKey();
      const slug = randomSlug('idem');
      const first = await t().http.post('/v1/tenants', { slug, name: 'Same' }, withKey(key));
      const second = await t().http.post('/v1/tenants', { name: '  Same ', slug, ignored: true }, withKey(key));
      expect(first.status, first.text).toBe(201);
      expect(second.status, second.text).toBe(201);
      expect(second.body).toEqual(first.body);
    });
  });

  describe('keys are scoped per caller', () => {
    it('runIdempotently: one key in two scopes runs twice; within a scope it replays', async () => {
      const deps = t().deps;
      const key = newKey();
      let runs = 0;
      const work = async () => ({ run: ++runs });
      const req = (scope: string) => ({ key, scope, operation: 'test.op', input: { x: 1 } });
      expect(await runIdempotently(deps, req('user:alice'), work)).toEqual({ run: 1 });
      expect(await runIdempotently(deps, req('user:bob'), work)).toEqual({ run: 2 });
      expect(await runIdempotently(deps, req('user:alice'), work)).toEqual({ run: 1 });
      expect(await runIdempotently(deps, req('user:bob'), work)).toEqual({ run: 2 });
      expect(await runIdempotently(deps, req('service:alice'), work)).toEqual({ run: 3 });
      expect(runs).toBe(3);
      // Another input in the same scope: 409 without running.
      await expect(runIdempotently(deps, { ...req('user:alice'), input: { x: 2 } }, work)).rejects.toMatchObject({
        code: 'CONFLICT',
      });
      expect(runs).toBe(3);
    });

    it('runIdempotently: no key → runs every time, stores nothing', async () => {
      let runs = 0;
      const work = async () => ++runs;
      for (let i = 0; i < 3; i++) await runIdempotently(t().deps, { key: null, scope: DEV_SCOPE, operation: 'test.op', input: {} }, work);
      expect(runs).toBe(3);
    });
  });

  describe('failures are not remembered', () => {
    it('a failed request releases its key: the retry runs again, and succeeds once the state is fixed', async () => {
      const key = newKey();
      const tenantId = randomUUID();
      const body = { tenant_id: tenantId, action: 'idem.after_fix', actor: { id: 'svc' } };
      const failed = await t().http.post('/v1/audit', body, withKey(key));
      expect(failed.status, failed.text).toBe(404);
      // Same key, same body, same state: the failure was not stored, so it runs (and fails) again.
      expect((await t().http.post('/v1/audit', body, withKey(key))).status).toBe(404);
      expect(await storedIdempotencyText(t(), kind)).not.toContain(key);
      // Fix the state (a tenant with that id), and the same key and body now succeed, once.
      const at = new Date();
      await t().store.transaction((tx) =>
        tx.insertTenant({ id: tenantId, slug: randomSlug('fixed'), name: 'Fixed', status: 'trial', createdAt: at, updatedAt: at }),
      );
      const ok = await t().http.post('/v1/audit', body, withKey(key));
      expect(ok.status, ok.text).toBe(201);
      const replay = await t().http.post('/v1/audit', body, withKey(key));
      expect(replay.status).toBe(201);
      expect(replay.body).toEqual(ok.body);
      expect(await auditOf(t(), tenantId, 'idem.after_fix')).toHaveLength(1);
    });

    it('a 409 is not replayed either: a retry after the conflict is gone runs', async () => {
      const tenant = await newTenant(t(), { status: 'active' });
      const key = newKey();
      const body = { tenant_id: tenant.id, product: 'analytics' };
      // Already entitled? No: first make the request pending, so the keyed request conflicts.
      expect((await t().http.post('/v1/catalog/request', body)).status).toBe(201);
      expectConflict(await t().http.post('/v1/catalog/request', body, withKey(key)), /already pending/);
      expectConflict(await t().http.post('/v1/catalog/request', body, withKey(key)), /already pending/);
      expect(await auditOf(t(), tenant.id, 'catalog.requested')).toHaveLength(1);
    });

    it('a 400 from a malformed body claims nothing', async () => {
      const key = newKey();
      expect((await t().http.post('/v1/tenants', { slug: 'NOT A SLUG', name: 'x' }, withKey(key))).status).toBe(400);
      const ok = await t().http.post('/v1/tenants', { slug: randomSlug('idem'), name: 'x' }, withKey(key));
      expect(ok.status, ok.text).toBe(201);
    });
  });

  describe('concurrent requests with one key', () => {
    // On PGlite they go one after another (tests/harness/single-session.ts): all replays then.
    let serial = false;
    beforeAll(async () => {
      serial = await onPglite(t());
    });

    it('20 × POST /v1/tenants: one creation; the rest replay it or are 409 in progress', async () => {
      const key = newKey();
      const body = { slug: randomSlug('idem'), name: 'Concurrent' };
      const responses = await fire(20, () => t().http.post('/v1/tenants', body, withKey(key)), serial);
      const created = responses.filter((r) => r.status === 201);
      expect(created.length).toBeGreaterThanOrEqual(1);
      expect(new Set(created.map((r) => r.body.id)).size).toBe(1);
      for (const r of responses.filter((x) => x.status !== 201)) expectConflict(r, /still in progress/);
      const id = created[0]!.body.id as string;
      expect((await t().http.get(`/v1/tenants/by-slug/${body.slug}`)).body.id).toBe(id);
      expect(await auditOf(t(), id, 'tenant.created')).toHaveLength(1);
      // Once it is done, every retry replays.
      const later = await t().http.post('/v1/tenants', body, withKey(key));
      expect(later.status).toBe(201);
      expect(later.body).toEqual(created[0]!.body);
    });

    it('20 × POST /v1/catalog/trial-request: one entitlement, one event', async () => {
      const tenant = await newTenant(t());
      const key = newKey();
      const body = { tenant_id: tenant.id, product: 'compliance' };
      const responses = await fire(20, () => t().http.post('/v1/catalog/trial-request', body, withKey(key)), serial);
      const created = responses.filter((r) => r.status === 201);
      expect(new Set(created.map((r) => r.body.id)).size).toBe(1);
      for (const r of responses.filter((x) => x.status !== 201)) expectConflict(r, /still in progress/);
      expect((await t().http.get(`/v1/entitlements?tenant_id=${tenant.id}`)).body.items).toHaveLength(1);
      expect(await auditOf(t(), tenant.id, 'entitlement.trial_started')).toHaveLength(1);
    });

    it('10 × POST /v1/api-keys: one key and one plaintext; the rest are 409', async () => {
      const tenant = await newTenant(t(), { status: 'active' });
      const key = newKey();
      const body = { tenant_id: tenant.id, name: 'concurrent' };
      const responses = await fire(10, () => t().http.post('/v1/api-keys', body, withKey(key)), serial);
      const created = responses.filter((r) => r.status === 201);
      expect(created).toHaveLength(1);
      for (const r of responses.filter((x) => x.status !== 201)) {
        expectConflict(r, /still in progress|already issued API key/);
        expect(r.text).not.toContain(created[0]!.body.plaintext);
      }
      const listed = await t().http.get(`/v1/api-keys?tenant_id=${tenant.id}&include_revoked=true`);
      expect(listed.body.items).toHaveLength(1);
      expect(await auditOf(t(), tenant.id, 'api_key.created')).toHaveLength(1);
    });
  });

  describe('the header itself', () => {
    it.each([
      ['300 characters', 'x'.repeat(300)],
      ['a space', 'has space'],
      ['empty', ''],
      ['a tab', 'tab\there'],
      ['a non-ASCII byte', 'caf\u00e9'],
    ])('a key with %s is 400, and nothing is created', async (_, bad) => {
      const slug = randomSlug('idem');
      const res = await t().http.post('/v1/tenants', { slug, name: 'Bad key' }, withKey(bad));
      expect(res.status, res.text).toBe(400);
      expect(res.body).toMatchObject({ code: 'BAD_REQUEST', issues: [{ path: ['Idempotency-Key'], message: expect.any(String) }] });
      expect((await t().http.get(`/v1/tenants/by-slug/${slug}`)).status).toBe(404);
    });

    it('a key of 255 visible ASCII characters is fine', async () => {
      const key = `${'!~'.repeat(120)}${newKey().slice(0, 15)}`;
      expect(key).toHaveLength(255);
      const body = { slug: randomSlug('idem'), name: 'Long key' };
      const first = await t().http.post('/v1/tenants', body, withKey(key));
      expect(first.status, first.text).toBe(201);
      expect((await t().http.post('/v1/tenants', body, withKey(key))).body).toEqual(first.body);
    });

    it('over tRPC: POST /trpc/tenants.create with the header replays, and shares keys with REST', async () => {
      const key = newKey();
      const body = { slug: randomSlug('idem'), name: 'tRPC' };
      const first = await t().http.post('/trpc/tenants.create', body, withKey(key));
      const second = await t().http.post('/trpc/tenants.create', body, withKey(key));
      expect(first.status, first.text).toBe(200);
      expect(second.status, second.text).toBe(200);
      expect(second.body.result.data).toEqual(first.body.result.data);
      // The operation is the procedure, whatever the transport: REST replays the tRPC answer.
      const rest = await t().http.post('/v1/tenants', body, withKey(key));
      expect(rest.status, rest.text).toBe(201);
      expect(rest.body).toEqual(first.body.result.data);
      expect(await auditOf(t(), first.body.result.data.id, 'tenant.created')).toHaveLength(1);
      // Another body over tRPC: 409 in tRPC's error shape; a bad key: 400.
      const conflict = await t().http.post('/trpc/tenants.create', { ...body, name: 'other' }, withKey(key));
      expect(conflict.status).toBe(409);
      expect(conflict.body.error).toMatchObject({ data: { code: 'CONFLICT' } });
      const bad = await t().http.post('/trpc/tenants.create', body, withKey('no spaces allowed'));
      expect(bad.status).toBe(400);
      expect(bad.body.error).toMatchObject({ data: { code: 'BAD_REQUEST', issues: [{ path: ['Idempotency-Key'] }] } });
    });
  });

  describe('expiry after 24 hours', () => {
    it('a record older than 24 h no longer holds its key; a younger one does', async () => {
      const young = newKey('young');
      const old = newKey('old');
      await plant(t().store, young, { ageMs: IDEMPOTENCY_TTL_MS - HOUR });
      await plant(t().store, old, { ageMs: IDEMPOTENCY_TTL_MS + HOUR });
      const body = { action: 'idem.expiry', actor: { id: 'svc' } };
      expectConflict(await t().http.post('/v1/audit', body, withKey(young)), /different request/);
      const fresh = await t().http.post('/v1/audit', body, withKey(old));
      expect(fresh.status, fresh.text).toBe(201);
      // The key now holds the new answer.
      expect((await t().http.post('/v1/audit', body, withKey(old))).body).toEqual(fresh.body);
    });

    it('a claim pending for over a minute is taken over; a fresh one is "in progress"', async () => {
      const stale = newKey('stale');
      const busy = newKey('busy');
      await plant(t().store, stale, { state: 'pending', response: null, ageMs: 2 * 60_000 });
      await plant(t().store, busy, { state: 'pending', response: null, ageMs: 1_000 });
      const body = { action: 'idem.pending', actor: { id: 'svc' } };
      expectConflict(await t().http.post('/v1/audit', body, withKey(busy)), /different request|in progress/);
      expect((await t().http.post('/v1/audit', body, withKey(stale))).status).toBe(201);
    });

    if (kind === 'postgres') it('ageing a real record past 24 h in the database frees the key', async () => {
      const pool = (t().store as PostgresStore).pool;
      const key = newKey('aged');
      const body = { action: 'idem.aged', actor: { id: 'svc' } };
      const first = await t().http.post('/v1/audit', body, withKey(key));
      expect(first.status, first.text).toBe(201);
      await pool.query(`UPDATE idempotency_keys SET created_at = now() - interval '23 hours' WHERE key = $1`, [key]);
      expect((await t().http.post('/v1/audit', body, withKey(key))).body).toEqual(first.body);
      await pool.query(`UPDATE idempotency_keys SET created_at = now() - interval '25 hours' WHERE key = $1`, [key]);
      const again = await t().http.post('/v1/audit', body, withKey(key));
      expect(again.status, again.text).toBe(201);
      expect(again.body.id).not.toBe(first.body.id);
      const { rows } = await pool.query<{ n: string }>('SELECT count(*) AS n FROM idempotency_keys WHERE key = $1', [key]);
      expect(Number(rows[0]!.n)).toBe(1);
      expect((await t().http.post('/v1/audit', body, withKey(key))).body).toEqual(again.body);
    });
  });
});

describe('keys are scoped per authenticated caller (auth on, two tokens)', () => {
  let issuer: OidcIssuer;
  let server: TestServer;
  beforeAll(async () => {
    issuer = await OidcIssuer.start();
    server = await startServer('memory', { auth: issuer.authenticator() });
  });
  afterAll(async () => {
    await server?.close();
    await issuer?.close();
  });

  it('the same key from two callers runs twice; each caller replays its own answer', async () => {
    const alice = { authorization: `Bearer ${await issuer.tokenFor('platform-admin', [], { sub: `alice-${randomUUID()}` })}` };
    const bob = { authorization: `Bearer ${await issuer.tokenFor('platform-admin', [], { sub: `bob-${randomUUID()}` })}` };
    const key = newKey('shared');
    const body = { action: 'idem.scoped', actor: { id: 'svc' } };
    const send = (who: Record<string, string>) => server.http.post('/v1/audit', body, { headers: { ...who, 'idempotency-key': key } });
    const a1 = await send(alice);
    const b1 = await send(bob);
    expect(a1.status, a1.text).toBe(201);
    expect(b1.status, b1.text).toBe(201);
    expect(b1.body.id).not.toBe(a1.body.id);
    expect((await send(alice)).body).toEqual(a1.body);
    expect((await send(bob)).body).toEqual(b1.body);
    // Bob cannot learn what Alice sent under that key either: his other body is his own conflict.
    const bobOther = await server.http.post('/v1/audit', { ...body, action: 'idem.other' }, { headers: { ...bob, 'idempotency-key': key } });
    expect(bobOther.status).toBe(409);
  });

  it('the scope is the caller, not the token: a new token of the same subject replays', async () => {
    const sub = `carol-${randomUUID()}`;
    const key = newKey('same-sub');
    const body = { action: 'idem.same_sub', actor: { id: 'svc' } };
    const send = async () =>
      server.http.post('/v1/audit', body, {
        headers: { authorization: `Bearer ${await issuer.tokenFor('platform-admin', [], { sub })}`, 'idempotency-key': key },
      });
    const first = await send();
    expect(first.status, first.text).toBe(201);
    expect((await send()).body).toEqual(first.body);
  });
});
