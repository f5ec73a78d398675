/**
 * GET /v1/entitlements over REST, on both stores: a tenant's entitlements by product key,
 * trials past their expires_at reported as `expired`, and the query's validation.
 */
import { randomUUID } from 'node:crypto';
import { expect, it } from 'vitest';
import type { PostgresStore } from '../src/db/postgres-store.js';
import type { EntitlementSource, EntitlementStatus } from '../src/db/store.js';
import type { HttpResponse } from './harness/http.js';
import type { TestServer } from './harness/server.js';
import { auditOf, eachStore, newTenant } from './harness/each-store.js';

const TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const DAY = 86_400_000;
const ENTITLEMENT_FIELDS = [
  'created_at',
  'expires_at',
  'id',
  'product',
  'source',
  'starts_at',
  'status',
  'tenant_id',
  'updated_at',
];

function expectError(res: HttpResponse, status: number, code: string) {
  expect(res.status, res.text).toBe(status);
  const body = res.body as { code: string; message: string; issues?: { path: (string | number)[]; message: string }[] };
  expect(body.code, res.text).toBe(code);
  expect(typeof body.message).toBe('string');
  expect(Object.keys(body).sort()).toEqual(code === 'BAD_REQUEST' ? ['code', 'issues', 'message'] : ['code', 'message']);
  return body;
}

function expectIssueOn(res: HttpResponse, path: (string | number)[]) {
  const body = expectError(res, 400, 'BAD_REQUEST');
  expect(body.issues!.map((i) => i.path), res.text).toContainEqual(path);
}

/**
 * Puts an entitlement straight into the store through the Store interface (works on both
 * stores; the API has no endpoint that grants one or backdates a trial).
 */
async function grant(
  s: TestServer,
  tenantId: string,
  product: string,
  opts: { status: EntitlementStatus; source?: EntitlementSource; startsAt?: Date; expiresAt?: Date | null },
) {
  const at = new Date();
  const startsAt = opts.startsAt ?? at;
  return s.store.transaction((tx) =>
    tx.insertEntitlement({
      id: randomUUID(),
      tenantId,
      product,
      status: opts.status,
      source: opts.source ?? (opts.status === 'trial' ? 'trial' : 'sales'),
      startsAt,
      expiresAt: opts.expiresAt === undefined ? null : opts.expiresAt,
      createdAt: startsAt,
      updatedAt: startsAt,
    }),
  );
}

/** A trial that started `ageDays` ago and ran for 14 days. */
const pastTrial = (ageDays: number) => ({
  status: 'trial' as const,
  startsAt: new Date(Date.now() - ageDays * DAY),
  expiresAt: new Date(Date.now() - ageDays * DAY + 14 * DAY),
});

eachStore('entitlements', (server, kind) => {
  const list = (query: string) => server().http.get(`/v1/entitlements?${query}`);
  async function items(tenantId: string) {
    const res = await list(`tenant_id=${tenantId}`);
    expect(res.status, res.text).toBe(200);
    expect(Object.keys(res.body)).toEqual(['items']);
    for (const e of res.body.items) {
      expect(Object.keys(e).sort()).toEqual(ENTITLEMENT_FIELDS);
      for (const f of ['starts_at', 'created_at', 'updated_at']) expect(e[f]).toMatch(TIME);
      if (e.expires_at !== null) expect(e.expires_at).toMatch(TIME);
      expect(e.tenant_id).toBe(tenantId.toLowerCase());
    }
    return res.body.items as any[];
  }

  it('lists no entitlements for a new tenant as an empty items array', async () => {
    const t = await newTenant(server());
    expect(await items(t.id)).toEqual([]);
  });

  it('lists a trial started over the API exactly as the trial request returned it', async () => {
    const t = await newTenant(server());
    const started = await server().http.post('/v1/catalog/trial-request', { tenant_id: t.id, product: 'analytics' });
    expect(started.status, started.text).toBe(201);
    expect(await items(t.id)).toEqual([started.body]);
  });

  it('orders entitlements by product key', async () => {
    const t = await newTenant(server(), { status: 'active' });
    for (const product of ['compliance', 'analytics', 'enterprise-sso', 'automation', 'internal-tools']) {
      await grant(server(), t.id, product, { status: 'active' });
    }
    expect((await items(t.id)).map((e) => e.product)).toEqual([
      'analytics',
      'automation',
      'compliance',
      'enterprise-sso',
      'internal-tools',
    ]);
  });

  it('lists only the asked tenant’s entitlements', async () => {
    const a = await newTenant(server());
    const b = await newTenant(server());
    await grant(server(), a.id, 'analytics', { status: 'active' });
    await grant(server(), b.id, 'automation', { status: 'active' });
    expect((await items(a.id)).map((e) => e.product)).toEqual(['analytics']);
    expect((await items(b.id)).map((e) => e.product)).toEqual(['automation']);
  });

  it('reports a trial whose expires_at has passed as expired', async () => {
    const t = await newTenant(server());
    const stored = await grant(server(), t.id, 'analytics', pastTrial(20));
    const [e] = await items(t.id);
    expect(e).toEqual({
      id: stored.id,
      tenant_id: t.id,
      product: 'analytics',
      status: 'expired',
      source: 'trial',
      starts_at: stored.startsAt.toISOString(),
      expires_at: stored.expiresAt!.toISOString(),
      created_at: stored.createdAt.toISOString(),
      updated_at: stored.updatedAt.toISOString(),
    });
  });

  it('reports a trial as expired from the very millisecond of expires_at', async () => {
    const t = await newTenant(server());
    await grant(server(), t.id, 'analytics', { status: 'trial', startsAt: new Date(Date.now() - 14 * DAY), expiresAt: new Date() });
    expect((await items(t.id)).map((e) => e.status)).toEqual(['expired']);
  });

  it('keeps reporting a running trial as trial', async () => {
    const t = await newTenant(server());
    await grant(server(), t.id, 'analytics', pastTrial(13));
    await grant(server(), t.id, 'automation', { status: 'trial', expiresAt: new Date(Date.now() + 60_000) });
    expect((await items(t.id)).map((e) => [e.product, e.status])).toEqual([
      ['analytics', 'trial'],
      ['automation', 'trial'],
    ]);
  });

  it('reports expired on every read, not just once', async () => {
    const t = await newTenant(server());
    await grant(server(), t.id, 'compliance', pastTrial(30));
    for (let i = 0; i < 3; i++) expect((await items(t.id)).map((e) => e.status)).toEqual(['expired']);
  });

  it('reports active, revoked and a mix of statuses and sources as stored', async () => {
    const t = await newTenant(server(), { status: 'active' });
    await grant(server(), t.id, 'analytics', { status: 'active', source: 'sales' });
    await grant(server(), t.id, 'automation', { status: 'revoked', source: 'manual' });
    await grant(server(), t.id, 'compliance', pastTrial(15));
    await grant(server(), t.id, 'enterprise-sso', { status: 'active', source: 'manual', expiresAt: new Date(Date.now() + DAY) });
    expect((await items(t.id)).map((e) => [e.product, e.status, e.source, e.expires_at === null])).toEqual([
      ['analytics', 'active', 'sales', true],
      ['automation', 'revoked', 'manual', true],
      ['compliance', 'expired', 'trial', false],
      ['enterprise-sso', 'active', 'manual', false],
    ]);
  });

  it.runIf(kind === 'postgres')('reports an API-started trial as expired once its row’s expires_at passes', async () => {
    const t = await newTenant(server());
    const started = await server().http.post('/v1/catalog/trial-request', { tenant_id: t.id, product: 'automation' });
    expect(started.status, started.text).toBe(201);
    const { pool } = server().store as PostgresStore;
    await pool.query(`UPDATE entitlements SET expires_at = now() - interval '1 minute' WHERE id = $1`, [started.body.id]);
    const [e] = await items(t.id);
    expect(e).toMatchObject({ id: started.body.id, status: 'expired', source: 'trial' });
  });

  it('still lists the entitlements of a frozen tenant', async () => {
    const t = await newTenant(server(), { status: 'active' });
    await grant(server(), t.id, 'analytics', { status: 'active' });
    expect((await server().http.post(`/v1/tenants/${t.id}/cancel`)).status).toBe(200);
    expect((await items(t.id)).map((e) => [e.product, e.status])).toEqual([['analytics', 'active']]);
  });

  it('accepts an upper-case tenant_id and returns lower-case ids', async () => {
    const t = await newTenant(server());
    await grant(server(), t.id, 'analytics', { status: 'active' });
    const listed = await items(t.id.toUpperCase());
    expect(listed).toHaveLength(1);
    expect(listed[0].tenant_id).toBe(t.id);
  });

  it('writes no audit event for reading entitlements', async () => {
    const t = await newTenant(server());
    const before = await auditOf(server(), t.id);
    await items(t.id);
    expect(await auditOf(server(), t.id)).toEqual(before);
  });

  it('answers 404 for an unknown tenant', async () => {
    expectError(await list(`tenant_id=${randomUUID()}`), 404, 'NOT_FOUND');
  });

  it('answers 400 when tenant_id is missing', async () => {
    expectIssueOn(await server().http.get('/v1/entitlements'), ['tenant_id']);
    expectIssueOn(await list('product=analytics'), ['tenant_id']);
  });

  it.each([
    ['empty', ''],
    ['not a UUID', 'acme'],
    ['without hyphens', '0000000000000000000000000000000a'],
    ['one digit short', '00000000-0000-0000-0000-00000000001'],
    ['with a non-hex digit', '00000000-0000-0000-0000-00000000000z'],
    ['in braces', '{00000000-0000-0000-0000-000000000001}'],
  ])('answers 400 for a tenant_id that is %s', async (_, value) => {
    expectIssueOn(await list(`tenant_id=${encodeURIComponent(value)}`), ['tenant_id']);
  });

  it('answers 400 for a duplicated tenant_id, even when both are the same tenant', async () => {
    const t = await newTenant(server());
    expectError(await list(`tenant_id=${t.id}&tenant_id=${t.id}`), 400, 'BAD_REQUEST');
  });
});
