/**
 * The catalog, sales requests and self-serve trials over REST, on both stores: what is
 * listed, who may request or try what (404 before 409, 400 before both), the one
 * automatic audit event of every change and none for a rejected request.
 */
import { randomUUID } from 'node:crypto';
import { expect, it } from 'vitest';
import type { EntitlementSource, EntitlementStatus } from '../src/db/store.js';
import type { HttpResponse } from './harness/http.js';
import type { TestServer } from './harness/server.js';
import { auditOf, eachStore, newTenant } from './harness/each-store.js';

const TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const UUID_LOWER = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const DAY = 86_400_000;
const DEV_ACTOR = { id: 'dev', name: 'dev', type: 'user' };

const DEFAULT_CATALOG = [
  { key: 'analytics', name: 'Analytics', requestable: true, trial_days: 14 },
  { key: 'automation', name: 'Automation', requestable: true, trial_days: 14 },
  { key: 'compliance', name: 'Compliance', requestable: true, trial_days: 14 },
  { key: 'enterprise-sso', name: 'Enterprise SSO', requestable: true, trial_days: 0 },
];

function expectError(res: HttpResponse, status: number, code: string) {
  expect(res.status, res.text).toBe(status);
  const body = res.body as { code: string; message: string; issues?: { path: (string | number)[]; message: string }[] };
  expect(body.code, res.text).toBe(code);
  expect(typeof body.message).toBe('string');
  expect(body.message.length).toBeGreaterThan(0);
  expect(Object.keys(body).sort()).toEqual(code === 'BAD_REQUEST' ? ['code', 'issues', 'message'] : ['code', 'message']);
  return body;
}

function expectIssueOn(res: HttpResponse, path: (string | number)[]) {
  const body = expectError(res, 400, 'BAD_REQUEST');
  expect(body.issues!.map((i) => i.path), res.text).toContainEqual(path);
}

function expectProductRequest(res: HttpResponse, want: Record<string, unknown>) {
  expect(res.status, res.text).toBe(201);
  const body = res.body;
  expect(Object.keys(body).sort()).toEqual(['created_at', 'id', 'note', 'product', 'status', 'tenant_id']);
  expect(body.id).toMatch(UUID_LOWER);
  expect(body.created_at).toMatch(TIME);
  expect(body).toMatchObject({ status: 'pending', ...want });
  return body as { id: string; tenant_id: string; product: string; status: string; note: string | null; created_at: string };
}

function expectTrial(res: HttpResponse, want: Record<string, unknown>) {
  expect(res.status, res.text).toBe(201);
  const body = res.body;
  expect(Object.keys(body).sort()).toEqual([
    'created_at',
    'expires_at',
    'id',
    'product',
    'source',
    'starts_at',
    'status',
    'tenant_id',
    'updated_at',
  ]);
  expect(body.id).toMatch(UUID_LOWER);
  for (const f of ['starts_at', 'expires_at', 'created_at', 'updated_at']) expect(body[f]).toMatch(TIME);
  expect(body).toMatchObject({ status: 'trial', source: 'trial', ...want });
  return body as {
    id: string;
    tenant_id: string;
    product: string;
    starts_at: string;
    expires_at: string;
    created_at: string;
    updated_at: string;
  };
}

/** Puts an entitlement straight into the store (the API has no endpoint that grants one). */
async function grant(
  s: TestServer,
  tenantId: string,
  product: string,
  opts: { status: EntitlementStatus; source?: EntitlementSource; startsAt?: Date; expiresAt?: Date | null },
) {
  const at = new Date();
  await s.store.transaction((tx) =>
    tx.insertEntitlement({
      id: randomUUID(),
      tenantId,
      product,
      status: opts.status,
      source: opts.source ?? (opts.status === 'trial' ? 'trial' : 'sales'),
      startsAt: opts.startsAt ?? at,
      expiresAt: opts.expiresAt === undefined ? null : opts.expiresAt,
      createdAt: at,
      updatedAt: at,
    }),
  );
}

eachStore('catalog', (server) => {
  const post = (path: string, body?: unknown) => server().http.post(path, body);
  const get = (path: string) => server().http.get(path);
  const request = (body: unknown) => post('/v1/catalog/request', body);
  const trial = (body: unknown) => post('/v1/catalog/trial-request', body);
  const entitlements = async (tenantId: string) => {
    const res = await get(`/v1/entitlements?tenant_id=${tenantId}`);
    expect(res.status, res.text).toBe(200);
    return res.body.items as any[];
  };

  /** Runs `fn`, then proves the tenant's audit trail and entitlements are as they were. */
  async function changesNothing(tenantId: string, fn: () => Promise<void>) {
    const events = await auditOf(server(), tenantId);
    const ents = await entitlements(tenantId);
    await fn();
    expect(await auditOf(server(), tenantId)).toEqual(events);
    expect(await entitlements(tenantId)).toEqual(ents);
  }

  // ---- GET /v1/catalog -----------------------------------------------------------------

  it('lists only requestable products, ordered by key, with every field', async () => {
    const res = await get('/v1/catalog');
    expect(res.status, res.text).toBe(200);
    expect(Object.keys(res.body)).toEqual(['items']);
    const items = res.body.items as any[];
    expect(items.map((p) => p.key)).toEqual(DEFAULT_CATALOG.map((p) => p.key));
    items.forEach((p, i) => {
      expect(Object.keys(p).sort()).toEqual(['description', 'key', 'name', 'requestable', 'trial_days']);
      expect(p).toMatchObject(DEFAULT_CATALOG[i]!);
      expect(typeof p.description).toBe('string');
      expect(p.description.length).toBeGreaterThan(0);
    });
    expect(items.some((p) => p.key === 'internal-tools')).toBe(false);
  });

  it('ignores unknown query parameters on the catalog', async () => {
    const res = await get('/v1/catalog?foo=bar');
    expect(res.status, res.text).toBe(200);
    expect(res.body.items).toHaveLength(4);
  });

  // ---- POST /v1/catalog/request --------------------------------------------------------

  it('records a pending sales request with a trimmed note and answers 201', async () => {
    const t = await newTenant(server());
    const res = await request({ tenant_id: t.id, product: 'analytics', note: '  Please call us\n' });
    const r = expectProductRequest(res, { tenant_id: t.id, product: 'analytics', note: 'Please call us' });
    expect(Math.abs(Date.parse(r.created_at) - Date.now())).toBeLessThan(60_000);
  });

  it('records exactly one catalog.requested event for a request', async () => {
    const t = await newTenant(server(), { status: 'active' });
    const r = expectProductRequest(await request({ tenant_id: t.id, product: 'compliance' }), {});
    const events = await auditOf(server(), t.id, 'catalog.requested');
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({
      tenant_id: t.id,
      product: 'compliance',
      action: 'catalog.requested',
      crud: 'c',
      actor: DEV_ACTOR,
      target: { id: r.id, type: 'product_request', name: 'compliance' },
      source_ip: '127.0.0.1',
      is_failure: false,
    });
    expect(events[0].occurred_at).toBe(r.created_at);
    expect((await auditOf(server(), t.id)).map((e) => e.action)).toEqual([
      'catalog.requested',
      'tenant.activated',
      'tenant.created',
    ]);
  });

  it('stores a missing, null, empty or blank note as null', async () => {
    for (const [product, note] of [
      ['analytics', undefined],
      ['automation', null],
      ['compliance', ''],
      ['enterprise-sso', ' \t\n '],
    ] as const) {
      const t = await newTenant(server());
      const body: Record<string, unknown> = { tenant_id: t.id, product };
      if (note !== undefined) body.note = note;
      const r = expectProductRequest(await request(body), { note: null });
      expect(r.note).toBeNull();
    }
  });

  it('accepts a note of 2000 code points and refuses 2001', async () => {
    const t = await newTenant(server());
    expectIssueOn(await request({ tenant_id: t.id, product: 'analytics', note: '😀'.repeat(2001) }), ['note']);
    const note = '😀'.repeat(2000);
    expectProductRequest(await request({ tenant_id: t.id, product: 'analytics', note: ` ${note} ` }), { note });
  });

  it('refuses a note holding a NUL character or an unpaired surrogate, changing nothing', async () => {
    const t = await newTenant(server());
    await changesNothing(t.id, async () => {
      for (const note of ['a\u0000b', 'half \ud83d']) {
        expectIssueOn(await request({ tenant_id: t.id, product: 'analytics', note }), ['note']);
      }
    });
    expectProductRequest(await request({ tenant_id: t.id, product: 'analytics' }), {});
  });

  it('lets a sales-only product (trial_days 0) be requested', async () => {
    const t = await newTenant(server());
    expectProductRequest(await request({ tenant_id: t.id, product: 'enterprise-sso' }), { product: 'enterprise-sso' });
  });

  it('accepts an upper-case tenant_id and returns it lower-case', async () => {
    const t = await newTenant(server());
    const r = expectProductRequest(await request({ tenant_id: t.id.toUpperCase(), product: 'analytics' }), {
      tenant_id: t.id,
    });
    expect(r.tenant_id).toBe(t.id);
    expect(await auditOf(server(), t.id, 'catalog.requested')).toHaveLength(1);
  });

  it('refuses a second request while one is pending, changing nothing', async () => {
    const t = await newTenant(server());
    expectProductRequest(await request({ tenant_id: t.id, product: 'analytics' }), {});
    await changesNothing(t.id, async () => {
      const body = expectError(await request({ tenant_id: t.id, product: 'analytics', note: 'again' }), 409, 'CONFLICT');
      expect(body.message).toMatch(/pending/);
    });
    // A pending request for one product does not block another.
    expectProductRequest(await request({ tenant_id: t.id, product: 'automation' }), { product: 'automation' });
  });

  it('lets exactly one of concurrent requests for the same product win', async () => {
    const t = await newTenant(server());
    const results = await Promise.all([0, 1, 2, 3].map(() => request({ tenant_id: t.id, product: 'analytics' })));
    expect(results.map((r) => r.status).sort()).toEqual([201, 409, 409, 409]);
    expect(await auditOf(server(), t.id, 'catalog.requested')).toHaveLength(1);
  });

  it('refuses a request from a tenant already holding an active entitlement', async () => {
    const t = await newTenant(server(), { status: 'active' });
    await grant(server(), t.id, 'analytics', { status: 'active' });
    await changesNothing(t.id, async () => {
      const body = expectError(await request({ tenant_id: t.id, product: 'analytics' }), 409, 'CONFLICT');
      expect(body.message).toMatch(/entitled/);
    });
  });

  it('lets a tenant on a trial of the product ask sales for it', async () => {
    const t = await newTenant(server());
    expectTrial(await trial({ tenant_id: t.id, product: 'analytics' }), {});
    expectProductRequest(await request({ tenant_id: t.id, product: 'analytics' }), { product: 'analytics' });
  });

  it('lets a tenant whose trial expired, or whose entitlement was revoked, ask sales', async () => {
    const t = await newTenant(server());
    await grant(server(), t.id, 'analytics', {
      status: 'trial',
      startsAt: new Date(Date.now() - 20 * DAY),
      expiresAt: new Date(Date.now() - 6 * DAY),
    });
    await grant(server(), t.id, 'automation', { status: 'revoked' });
    expectProductRequest(await request({ tenant_id: t.id, product: 'analytics' }), {});
    expectProductRequest(await request({ tenant_id: t.id, product: 'automation' }), {});
  });

  it('refuses a request from a frozen tenant, changing nothing', async () => {
    const t = await newTenant(server(), { status: 'frozen' });
    await changesNothing(t.id, async () => {
      const body = expectError(await request({ tenant_id: t.id, product: 'analytics' }), 409, 'CONFLICT');
      expect(body.message).toMatch(/frozen/);
    });
  });

  it('answers 404 for a request naming an unknown tenant', async () => {
    const id = randomUUID();
    expectError(await request({ tenant_id: id, product: 'analytics' }), 404, 'NOT_FOUND');
    expect(await auditOf(server(), id)).toEqual([]);
  });

  it('answers 404 for a request for an unknown or non-requestable product', async () => {
    const t = await newTenant(server());
    await changesNothing(t.id, async () => {
      expectError(await request({ tenant_id: t.id, product: 'internal-tools' }), 404, 'NOT_FOUND');
      expectError(await request({ tenant_id: t.id, product: 'no-such-product' }), 404, 'NOT_FOUND');
    });
  });

  it('validates the request body: tenant_id, product and note', async () => {
    const t = await newTenant(server());
    await changesNothing(t.id, async () => {
      expectIssueOn(await request({ product: 'analytics' }), ['tenant_id']);
      expectIssueOn(await request({ tenant_id: 'nope', product: 'analytics' }), ['tenant_id']);
      expectIssueOn(await request({ tenant_id: t.id.replaceAll('-', ''), product: 'analytics' }), ['tenant_id']);
      expectIssueOn(await request({ tenant_id: t.id }), ['product']);
      expectIssueOn(await request({ tenant_id: t.id, product: 'Analytics' }), ['product']);
      expectIssueOn(await request({ tenant_id: t.id, product: 'a' }), ['product']);
      expectIssueOn(await request({ tenant_id: t.id, product: 'analytics_x' }), ['product']);
      expectIssueOn(await request({ tenant_id: t.id, product: 7 }), ['product']);
      expectIssueOn(await request({ tenant_id: t.id, product: 'analytics', note: 5 }), ['note']);
      expectError(await request([]), 400, 'BAD_REQUEST');
    });
  });

  it('prefers 400 over 404: a malformed body naming an unknown tenant is a validation error', async () => {
    const id = randomUUID();
    expectIssueOn(await request({ tenant_id: id, product: 'Not A Key' }), ['product']);
    expectIssueOn(await request({ tenant_id: id, product: 'analytics', note: 'x'.repeat(2001) }), ['note']);
    expectIssueOn(await trial({ tenant_id: id, product: 'Not A Key' }), ['product']);
  });

  it('prefers 404 over 409: a frozen tenant asking for an unknown product gets 404', async () => {
    const t = await newTenant(server(), { status: 'frozen' });
    expectError(await request({ tenant_id: t.id, product: 'no-such-product' }), 404, 'NOT_FOUND');
    expectError(await request({ tenant_id: t.id, product: 'internal-tools' }), 404, 'NOT_FOUND');
    expectError(await trial({ tenant_id: t.id, product: 'no-such-product' }), 404, 'NOT_FOUND');
    expectError(await trial({ tenant_id: t.id, product: 'internal-tools' }), 404, 'NOT_FOUND');
  });

  it('prefers 404 over 409: holding a non-requestable product does not make it requestable', async () => {
    const t = await newTenant(server(), { status: 'active' });
    await grant(server(), t.id, 'internal-tools', { status: 'active', source: 'manual' });
    await changesNothing(t.id, async () => {
      expectError(await request({ tenant_id: t.id, product: 'internal-tools' }), 404, 'NOT_FOUND');
      expectError(await trial({ tenant_id: t.id, product: 'internal-tools' }), 404, 'NOT_FOUND');
    });
  });

  it('ignores unknown body fields on a request, including status', async () => {
    const t = await newTenant(server());
    expectProductRequest(await request({ tenant_id: t.id, product: 'analytics', status: 'fulfilled', extra: 1 }), {
      status: 'pending',
    });
  });

  // ---- POST /v1/catalog/trial-request --------------------------------------------------

  it('starts a 14-day trial: status trial, source trial, expires_at = starts_at + 14 days', async () => {
    const t = await newTenant(server());
    const before = Date.now();
    const e = expectTrial(await trial({ tenant_id: t.id, product: 'automation' }), { tenant_id: t.id, product: 'automation' });
    const starts = Date.parse(e.starts_at);
    expect(starts).toBeGreaterThanOrEqual(before - 1000);
    expect(starts).toBeLessThanOrEqual(Date.now() + 1000);
    expect(Date.parse(e.expires_at) - starts).toBe(14 * DAY);
    expect(e.created_at).toBe(e.starts_at);
    expect(e.updated_at).toBe(e.created_at);
    const listed = await entitlements(t.id);
    expect(listed).toEqual([e]);
  });

  it('records exactly one entitlement.trial_started event for a trial', async () => {
    const t = await newTenant(server());
    const e = expectTrial(await trial({ tenant_id: t.id, product: 'analytics' }), {});
    const events = await auditOf(server(), t.id, 'entitlement.trial_started');
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({
      tenant_id: t.id,
      product: 'analytics',
      action: 'entitlement.trial_started',
      crud: 'c',
      actor: DEV_ACTOR,
      target: { id: e.id, type: 'entitlement', name: 'analytics' },
      source_ip: '127.0.0.1',
      is_failure: false,
    });
    expect(events[0].occurred_at).toBe(e.starts_at);
    expect((await auditOf(server(), t.id)).map((x) => x.action)).toEqual(['entitlement.trial_started', 'tenant.created']);
  });

  it('lets an active tenant start trials of several products', async () => {
    const t = await newTenant(server(), { status: 'active' });
    expectTrial(await trial({ tenant_id: t.id, product: 'compliance' }), {});
    expectTrial(await trial({ tenant_id: t.id, product: 'analytics' }), {});
    expect((await entitlements(t.id)).map((e) => e.product)).toEqual(['analytics', 'compliance']);
  });

  it('accepts an upper-case tenant_id for a trial and returns it lower-case', async () => {
    const t = await newTenant(server());
    expectTrial(await trial({ tenant_id: t.id.toUpperCase(), product: 'analytics' }), { tenant_id: t.id });
  });

  it('refuses a second trial of the same product, changing nothing', async () => {
    const t = await newTenant(server());
    expectTrial(await trial({ tenant_id: t.id, product: 'analytics' }), {});
    await changesNothing(t.id, async () => {
      expectError(await trial({ tenant_id: t.id, product: 'analytics' }), 409, 'CONFLICT');
    });
  });

  it('refuses a trial after the earlier trial expired (one trial per product)', async () => {
    const t = await newTenant(server());
    await grant(server(), t.id, 'analytics', {
      status: 'trial',
      startsAt: new Date(Date.now() - 20 * DAY),
      expiresAt: new Date(Date.now() - 6 * DAY),
    });
    await changesNothing(t.id, async () => {
      expectError(await trial({ tenant_id: t.id, product: 'analytics' }), 409, 'CONFLICT');
    });
  });

  it('refuses a trial to a tenant that ever had the product (active or revoked)', async () => {
    const t = await newTenant(server(), { status: 'active' });
    await grant(server(), t.id, 'analytics', { status: 'active' });
    await grant(server(), t.id, 'automation', { status: 'revoked', source: 'manual' });
    await changesNothing(t.id, async () => {
      expectError(await trial({ tenant_id: t.id, product: 'analytics' }), 409, 'CONFLICT');
      expectError(await trial({ tenant_id: t.id, product: 'automation' }), 409, 'CONFLICT');
    });
  });

  it('lets exactly one of concurrent trial requests for the same product win', async () => {
    const t = await newTenant(server());
    const results = await Promise.all([0, 1, 2, 3].map(() => trial({ tenant_id: t.id, product: 'compliance' })));
    expect(results.map((r) => r.status).sort()).toEqual([201, 409, 409, 409]);
    expect(await entitlements(t.id)).toHaveLength(1);
    expect(await auditOf(server(), t.id, 'entitlement.trial_started')).toHaveLength(1);
  });

  it('refuses a trial of a product without self-serve trial (enterprise-sso), changing nothing', async () => {
    const t = await newTenant(server());
    await changesNothing(t.id, async () => {
      expectError(await trial({ tenant_id: t.id, product: 'enterprise-sso' }), 409, 'CONFLICT');
    });
  });

  it('refuses a trial to a frozen tenant, changing nothing', async () => {
    const t = await newTenant(server(), { status: 'frozen' });
    await changesNothing(t.id, async () => {
      const body = expectError(await trial({ tenant_id: t.id, product: 'analytics' }), 409, 'CONFLICT');
      expect(body.message).toMatch(/frozen/);
    });
  });

  it('lets a tenant with a pending sales request still start its trial', async () => {
    const t = await newTenant(server());
    expectProductRequest(await request({ tenant_id: t.id, product: 'analytics' }), {});
    expectTrial(await trial({ tenant_id: t.id, product: 'analytics' }), { product: 'analytics' });
    // …and the request stays pending: a second one is still refused.
    expectError(await request({ tenant_id: t.id, product: 'analytics' }), 409, 'CONFLICT');
  });

  it('answers 404 for a trial for an unknown tenant', async () => {
    const id = randomUUID();
    expectError(await trial({ tenant_id: id, product: 'analytics' }), 404, 'NOT_FOUND');
    expect(await auditOf(server(), id)).toEqual([]);
  });

  it('answers 404 for a trial of an unknown or non-requestable product', async () => {
    const t = await newTenant(server());
    await changesNothing(t.id, async () => {
      expectError(await trial({ tenant_id: t.id, product: 'internal-tools' }), 404, 'NOT_FOUND');
      expectError(await trial({ tenant_id: t.id, product: 'no-such-product' }), 404, 'NOT_FOUND');
    });
  });

  it('validates the trial body: tenant_id and product', async () => {
    const t = await newTenant(server());
    await changesNothing(t.id, async () => {
      expectIssueOn(await trial({ product: 'analytics' }), ['tenant_id']);
      expectIssueOn(await trial({ tenant_id: `${t.id}0`, product: 'analytics' }), ['tenant_id']);
      expectIssueOn(await trial({ tenant_id: t.id }), ['product']);
      expectIssueOn(await trial({ tenant_id: t.id, product: 'ANALYTICS' }), ['product']);
      expectIssueOn(await trial({ tenant_id: t.id, product: null }), ['product']);
      const json = { headers: { 'content-type': 'application/json' } };
      // Not JSON at all: a parse error (400), which need not carry `issues`.
      const unparsable = await server().http.post('/v1/catalog/trial-request', 'not json at all', json);
      expect(unparsable.status, unparsable.text).toBe(400);
      expect(unparsable.body.code).toBe('BAD_REQUEST');
      expectError(await server().http.post('/v1/catalog/trial-request', '[]', json), 400, 'BAD_REQUEST');
    });
  });

  it('ignores a note or other unknown fields on a trial request', async () => {
    const t = await newTenant(server());
    expectTrial(await trial({ tenant_id: t.id, product: 'analytics', note: 'hi', status: 'active', source: 'sales' }), {
      status: 'trial',
      source: 'trial',
    });
  });
});
