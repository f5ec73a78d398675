/**
 * Tenants over REST, on both stores: create, read by id and by slug, and the lifecycle
 * trial → active → frozen, with the one automatic audit event of every change and none
 * for a rejected request.
 */
import { randomUUID } from 'node:crypto';
import { expect, it } from 'vitest';
import type { HttpResponse } from './harness/http.js';
import type { TestServer } from './harness/server.js';
import { auditOf, eachStore, newTenant, randomSlug } from './harness/each-store.js';

const TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const UUID_LOWER = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const DEV_ACTOR = { id: 'dev', name: 'dev', type: 'user' };

type Tenant = { id: string; slug: string; name: string; status: string; created_at: string; updated_at: string };

/** A Tenant resource, exactly: its six fields, a lower-case id, millisecond UTC times. */
function expectTenant(res: HttpResponse, status: number, want: Partial<Tenant> = {}): Tenant {
  expect(res.status, res.text).toBe(status);
  expect(res.headers.get('content-type')).toMatch(/^application\/json\b/);
  const body = res.body as Tenant;
  expect(Object.keys(body).sort()).toEqual(['created_at', 'id', 'name', 'slug', 'status', 'updated_at']);
  expect(body.id).toMatch(UUID_LOWER);
  expect(body.created_at).toMatch(TIME);
  expect(body.updated_at).toMatch(TIME);
  expect(body).toMatchObject(want);
  return body;
}

/** An error body with the given status and code; `issues` on validation errors. */
function expectError(res: HttpResponse, status: number, code: string) {
  expect(res.status, res.text).toBe(status);
  const body = res.body as { code: string; message: string; issues?: { path: (string | number)[]; message: string }[] };
  expect(body.code, res.text).toBe(code);
  expect(typeof body.message).toBe('string');
  expect(body.message.length).toBeGreaterThan(0);
  const keys = Object.keys(body).sort();
  if (code === 'BAD_REQUEST') {
    expect(keys).toEqual(['code', 'issues', 'message']);
    expect(Array.isArray(body.issues)).toBe(true);
    expect(body.issues!.length).toBeGreaterThan(0);
    for (const issue of body.issues!) {
      expect(Object.keys(issue).sort()).toEqual(['message', 'path']);
      expect(Array.isArray(issue.path)).toBe(true);
      expect(typeof issue.message).toBe('string');
    }
  } else {
    expect(keys).toEqual(['code', 'message']);
  }
  return body;
}

/** A validation 400 with an issue on exactly `path`. */
function expectIssueOn(res: HttpResponse, path: (string | number)[]) {
  const body = expectError(res, 400, 'BAD_REQUEST');
  expect(body.issues!.map((i) => i.path), res.text).toContainEqual(path);
}

/** Every `tenant.created` event in the store (across tenants), to prove a rejection wrote none. */
async function createdEventCount(s: TestServer): Promise<number> {
  let count = 0;
  let cursor: string | null = null;
  do {
    const q = new URLSearchParams({ action: 'tenant.created', limit: '500' });
    if (cursor) q.set('cursor', cursor);
    const res = await s.http.get(`/v1/audit?${q}`);
    expect(res.status, res.text).toBe(200);
    count += res.body.items.length;
    cursor = res.body.next_cursor;
  } while (cursor);
  return count;
}

/** The one audit event a tenant change must write. */
function expectTenantEvent(event: any, tenant: Tenant, action: string, crud: string) {
  expect(event).toMatchObject({
    tenant_id: tenant.id,
    product: null,
    action,
    crud,
    actor: DEV_ACTOR,
    target: { id: tenant.id, type: 'tenant', name: tenant.slug },
    source_ip: '127.0.0.1',
    is_failure: false,
    description: null,
    fields: {},
  });
}

eachStore('tenants', (server) => {
  const post = (path: string, body?: unknown) => server().http.post(path, body);
  const get = (path: string) => server().http.get(path);

  // ---- create ------------------------------------------------------------------------

  it('creates a tenant in trial and answers 201 with the whole resource', async () => {
    const slug = randomSlug('create');
    const res = await post('/v1/tenants', { slug, name: 'Create Co' });
    const t = expectTenant(res, 201, { slug, name: 'Create Co', status: 'trial' });
    expect(t.created_at).toBe(t.updated_at);
    expect(Math.abs(Date.parse(t.created_at) - Date.now())).toBeLessThan(60_000);
    expectTenant(await get(`/v1/tenants/${t.id}`), 200, t);
  });

  it('records exactly one tenant.created event for a new tenant', async () => {
    const t = expectTenant(await post('/v1/tenants', { slug: randomSlug(), name: 'Audited' }), 201);
    const events = await auditOf(server(), t.id);
    expect(events).toHaveLength(1);
    expectTenantEvent(events[0], t, 'tenant.created', 'c');
    expect(events[0].occurred_at).toBe(t.created_at);
  });

  it('ignores X-Forwarded-For for source_ip when no proxy is trusted', async () => {
    const res = await server().http.post(
      '/v1/tenants',
      { slug: randomSlug(), name: 'Forwarded' },
      { headers: { 'x-forwarded-for': '203.0.113.9' } },
    );
    const t = expectTenant(res, 201);
    const [event] = await auditOf(server(), t.id, 'tenant.created');
    expect(event.source_ip).toBe('127.0.0.1');
  });

  it('stores and returns the name trimmed of surrounding white space', async () => {
    const res = await post('/v1/tenants', { slug: randomSlug(), name: ' \t\u00a0 Trimmed  Name \n\u3000' });
    const t = expectTenant(res, 201, { name: 'Trimmed  Name' });
    expectTenant(await get(`/v1/tenants/${t.id}`), 200, { name: 'Trimmed  Name' });
    expectTenant(await get(`/v1/tenants/by-slug/${t.slug}`), 200, { name: 'Trimmed  Name' });
  });

  it('accepts a name of 200 code points even when it is 400 UTF-16 units', async () => {
    const name = '😀'.repeat(200);
    expect(name.length).toBe(400);
    const t = expectTenant(await post('/v1/tenants', { slug: randomSlug(), name }), 201, { name });
    expectTenant(await get(`/v1/tenants/${t.id}`), 200, { name });
  });

  it('accepts a name of 200 characters surrounded by white space (length counted after trimming)', async () => {
    const name = 'n'.repeat(200);
    expectTenant(await post('/v1/tenants', { slug: randomSlug(), name: `   ${name}   ` }), 201, { name });
  });

  it('accepts a one-character name', async () => {
    expectTenant(await post('/v1/tenants', { slug: randomSlug(), name: 'x' }), 201, { name: 'x' });
  });

  it('refuses a name of 201 code points', async () => {
    expectIssueOn(await post('/v1/tenants', { slug: randomSlug(), name: '😀'.repeat(201) }), ['name']);
    expectIssueOn(await post('/v1/tenants', { slug: randomSlug(), name: 'n'.repeat(201) }), ['name']);
  });

  it('refuses a name that is empty or only white space', async () => {
    expectIssueOn(await post('/v1/tenants', { slug: randomSlug(), name: '' }), ['name']);
    expectIssueOn(await post('/v1/tenants', { slug: randomSlug(), name: '   \t\n ' }), ['name']);
  });

  it('refuses a name holding a NUL character or an unpaired surrogate, identically on both stores', async () => {
    const before = await createdEventCount(server());
    for (const name of ['a\u0000b', 'lone \ud800 high', 'lone \udc00 low', 'reversed \udc00\ud800']) {
      expectIssueOn(await post('/v1/tenants', { slug: randomSlug(), name }), ['name']);
    }
    expect(await createdEventCount(server())).toBe(before);
    // A properly paired surrogate (an astral code point) is fine.
    expectTenant(await post('/v1/tenants', { slug: randomSlug(), name: 'ok \ud83d\ude00' }), 201, { name: 'ok 😀' });
  });

  it('refuses a missing or non-string name or slug', async () => {
    expectIssueOn(await post('/v1/tenants', { slug: randomSlug() }), ['name']);
    expectIssueOn(await post('/v1/tenants', { name: 'No slug' }), ['slug']);
    expectIssueOn(await post('/v1/tenants', { slug: randomSlug(), name: 42 }), ['name']);
    expectIssueOn(await post('/v1/tenants', { slug: 123, name: 'Numeric slug' }), ['slug']);
    expectIssueOn(await post('/v1/tenants', { slug: null, name: 'Null slug' }), ['slug']);
  });

  it('refuses a body that is not a JSON object', async () => {
    const json = { headers: { 'content-type': 'application/json' } };
    for (const raw of ['[]', 'null', '"just a string"', '42', '{}']) {
      expectError(await server().http.post('/v1/tenants', raw, json), 400, 'BAD_REQUEST');
    }
  });

  it.each([
    ['too short (2 characters)', 'ab'],
    ['a leading hyphen', '-abc'],
    ['a trailing hyphen', 'abc-'],
    ['upper-case letters', 'Abc-def'],
    ['an underscore', 'abc_def'],
    ['a dot', 'abc.def'],
    ['a space', 'abc def'],
    ['a non-ASCII letter', 'café'],
    ['surrounding white space', ' abcdef '],
    ['64 characters', 'a'.repeat(64)],
    ['nothing at all', ''],
  ])('refuses a slug with %s', async (_, slug) => {
    expectIssueOn(await post('/v1/tenants', { slug, name: 'Bad slug' }), ['slug']);
    expectError(await get(`/v1/tenants/by-slug/${encodeURIComponent(slug || 'x')}`), 404, 'NOT_FOUND');
  });

  it.each([
    ['3 characters', () => `a${randomSlug('').slice(1, 3)}`],
    ['63 characters', () => randomSlug('s').padEnd(63, '9')],
    ['only digits', () => String(Math.floor(Math.random() * 1e12)).padStart(12, '1')],
    ['inner double hyphens', () => `x--${randomSlug('y')}`],
  ])('accepts a slug of %s', async (_, make) => {
    const slug = make();
    expectTenant(await post('/v1/tenants', { slug, name: 'Good slug' }), 201, { slug });
    expectTenant(await get(`/v1/tenants/by-slug/${slug}`), 200, { slug });
  });

  it('writes nothing for a refused create: no tenant, no event', async () => {
    const before = await createdEventCount(server());
    const slug = randomSlug();
    expectError(await post('/v1/tenants', { slug, name: '   ' }), 400, 'BAD_REQUEST');
    expectError(await post('/v1/tenants', { slug: 'Bad_Slug', name: 'x' }), 400, 'BAD_REQUEST');
    expectError(await get(`/v1/tenants/by-slug/${slug}`), 404, 'NOT_FOUND');
    expect(await createdEventCount(server())).toBe(before);
  });

  it('refuses a slug that is taken with 409 and changes nothing', async () => {
    const first = await newTenant(server());
    const before = await createdEventCount(server());
    const res = await post('/v1/tenants', { slug: first.slug, name: 'Copycat' });
    const body = expectError(res, 409, 'CONFLICT');
    expect(body.message).toContain(first.slug);
    expect(await createdEventCount(server())).toBe(before);
    expectTenant(await get(`/v1/tenants/by-slug/${first.slug}`), 200, { id: first.id, name: 'Test tenant' });
  });

  it('prefers 400 over 409: a taken slug with an invalid name is a validation error', async () => {
    const first = await newTenant(server());
    expectIssueOn(await post('/v1/tenants', { slug: first.slug, name: '' }), ['name']);
  });

  it('lets exactly one of two concurrent creates with the same slug win', async () => {
    const slug = randomSlug('race');
    const results = await Promise.all([0, 1, 2, 3].map((i) => post('/v1/tenants', { slug, name: `Racer ${i}` })));
    const statuses = results.map((r) => r.status).sort();
    expect(statuses).toEqual([201, 409, 409, 409]);
    const winner = results.find((r) => r.status === 201)!.body as Tenant;
    expect(await auditOf(server(), winner.id)).toHaveLength(1);
  });

  it('ignores unknown body fields, including attempts to set status or id', async () => {
    const id = randomUUID();
    const res = await post('/v1/tenants', { slug: randomSlug(), name: 'Sneaky', status: 'active', id, extra: { a: 1 } });
    const t = expectTenant(res, 201, { status: 'trial' });
    expect(t.id).not.toBe(id);
  });

  // ---- read --------------------------------------------------------------------------

  it('gets a tenant by id and by slug', async () => {
    const t = await newTenant(server());
    expectTenant(await get(`/v1/tenants/${t.id}`), 200, t);
    expectTenant(await get(`/v1/tenants/by-slug/${t.slug}`), 200, t);
  });

  it('accepts an upper-case id and returns it lower-case', async () => {
    const t = await newTenant(server());
    const res = await get(`/v1/tenants/${t.id.toUpperCase()}`);
    expectTenant(res, 200, { id: t.id });
  });

  it('answers 404 for an unknown tenant id or slug', async () => {
    expectError(await get(`/v1/tenants/${randomUUID()}`), 404, 'NOT_FOUND');
    expectError(await get(`/v1/tenants/by-slug/${randomSlug('missing')}`), 404, 'NOT_FOUND');
  });

  it('finds a slug only by its exact spelling', async () => {
    const t = await newTenant(server());
    expectError(await get(`/v1/tenants/by-slug/${t.slug.toUpperCase()}`), 404, 'NOT_FOUND');
    expectError(await get(`/v1/tenants/by-slug/${t.slug}x`), 404, 'NOT_FOUND');
  });

  const MALFORMED_IDS = [
    'not-a-uuid',
    '12345',
    '00000000000000000000000000000001',
    '{00000000-0000-0000-0000-000000000001}',
    '00000000-0000-0000-0000-00000000000g',
    '00000000-0000-0000-0000-0000000000011',
    '0000000-00000-0000-0000-000000000001',
    'urn:uuid:00000000-0000-0000-0000-000000000001',
  ];

  it.each(MALFORMED_IDS)('answers 400 for the malformed id %s on every tenant path', async (id) => {
    const enc = encodeURIComponent(id);
    expectIssueOn(await get(`/v1/tenants/${enc}`), ['id']);
    expectIssueOn(await post(`/v1/tenants/${enc}/activate`), ['id']);
    expectIssueOn(await post(`/v1/tenants/${enc}/cancel`), ['id']);
  });

  // ---- lifecycle -----------------------------------------------------------------------

  it('activates a trial tenant: 200, status active, updated_at moves, created_at stays', async () => {
    const t = await newTenant(server());
    await new Promise((r) => setTimeout(r, 5));
    const res = await post(`/v1/tenants/${t.id}/activate`);
    const a = expectTenant(res, 200, { id: t.id, slug: t.slug, name: t.name, status: 'active', created_at: t.created_at });
    expect(Date.parse(a.updated_at)).toBeGreaterThan(Date.parse(t.updated_at));
    expectTenant(await get(`/v1/tenants/${t.id}`), 200, a);
  });

  it('records exactly one tenant.activated event', async () => {
    const t = await newTenant(server());
    const a = expectTenant(await post(`/v1/tenants/${t.id}/activate`), 200);
    const events = await auditOf(server(), t.id, 'tenant.activated');
    expect(events).toHaveLength(1);
    expectTenantEvent(events[0], a, 'tenant.activated', 'u');
    expect(events[0].occurred_at).toBe(a.updated_at);
    expect((await auditOf(server(), t.id)).map((e) => e.action)).toEqual(['tenant.activated', 'tenant.created']);
  });

  it('cancels an active tenant: 200, status frozen, with one tenant.canceled event', async () => {
    const t = await newTenant(server(), { status: 'active' });
    const res = await post(`/v1/tenants/${t.id}/cancel`);
    const c = expectTenant(res, 200, { id: t.id, status: 'frozen', created_at: t.created_at });
    expectTenant(await get(`/v1/tenants/by-slug/${t.slug}`), 200, c);
    const events = await auditOf(server(), t.id, 'tenant.canceled');
    expect(events).toHaveLength(1);
    expectTenantEvent(events[0], c, 'tenant.canceled', 'u');
    expect(events[0].occurred_at).toBe(c.updated_at);
    expect((await auditOf(server(), t.id)).map((e) => e.action)).toEqual([
      'tenant.canceled',
      'tenant.activated',
      'tenant.created',
    ]);
  });

  it('accepts an upper-case id for activate and cancel', async () => {
    const t = await newTenant(server());
    expectTenant(await post(`/v1/tenants/${t.id.toUpperCase()}/activate`), 200, { id: t.id, status: 'active' });
    expectTenant(await post(`/v1/tenants/${t.id.toUpperCase()}/cancel`), 200, { id: t.id, status: 'frozen' });
    const [event] = await auditOf(server(), t.id, 'tenant.canceled');
    expect(event.target.id).toBe(t.id);
    expect(event.tenant_id).toBe(t.id);
  });

  it.each([
    ['activate', 'active'],
    ['activate', 'frozen'],
    ['cancel', 'trial'],
    ['cancel', 'frozen'],
  ] as const)('refuses to %s a tenant that is %s with a 409 naming the status, changing nothing', async (op, status) => {
    const t = await newTenant(server(), { status });
    const eventsBefore = await auditOf(server(), t.id);
    const body = expectError(await post(`/v1/tenants/${t.id}/${op}`), 409, 'CONFLICT');
    // The current status as a word of its own ("active" inside "activate" does not count).
    expect(body.message).toMatch(new RegExp(`\\b${status}\\b`));
    expectTenant(await get(`/v1/tenants/${t.id}`), 200, t);
    expect(await auditOf(server(), t.id)).toEqual(eventsBefore);
  });

  it('answers 404 for activating or cancelling an unknown tenant', async () => {
    const id = randomUUID();
    expectError(await post(`/v1/tenants/${id}/activate`), 404, 'NOT_FOUND');
    expectError(await post(`/v1/tenants/${id}/cancel`), 404, 'NOT_FOUND');
    expect(await auditOf(server(), id)).toEqual([]);
  });

  it('lets exactly one of concurrent activations win, with one event', async () => {
    const t = await newTenant(server());
    const results = await Promise.all([0, 1, 2, 3].map(() => post(`/v1/tenants/${t.id}/activate`)));
    expect(results.map((r) => r.status).sort()).toEqual([200, 409, 409, 409]);
    for (const r of results.filter((x) => x.status === 409)) expect(r.body.message).toMatch(/\bactive\b/);
    expect(await auditOf(server(), t.id, 'tenant.activated')).toHaveLength(1);
  });

  it('never goes back: a frozen tenant stays frozen', async () => {
    const t = await newTenant(server(), { status: 'frozen' });
    expectError(await post(`/v1/tenants/${t.id}/activate`), 409, 'CONFLICT');
    expectError(await post(`/v1/tenants/${t.id}/cancel`), 409, 'CONFLICT');
    expectTenant(await get(`/v1/tenants/${t.id}`), 200, { status: 'frozen' });
  });

  it('takes no body on activate and cancel: a body is ignored', async () => {
    const t = await newTenant(server());
    expectTenant(await post(`/v1/tenants/${t.id}/activate`, { status: 'frozen' }), 200, { status: 'active' });
  });
});
