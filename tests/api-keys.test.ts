/**
 * API keys over REST, on both stores: POST /v1/api-keys, GET /v1/api-keys, DELETE /v1/api-keys/{id}
 * (API.md: the API key resource, the endpoint table, "Precise rules", "Automatic audit events").
 *
 * Every created key costs one argon2id run (~200 ms at 64 MiB), so the suite creates tens of
 * keys, not hundreds; failures are checked before anything would be hashed.
 */
import { randomUUID } from 'node:crypto';
import { expect, it } from 'vitest';
import type { ApiKey } from '../src/db/store.js';
import type { HttpResponse } from './harness/http.js';
import type { TestServer } from './harness/server.js';
import { auditOf, eachStore, newTenant } from './harness/each-store.js';

const PLAINTEXT = /^bp_[A-Za-z0-9_-]{22}$/;
const UUID_LOWER = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const TIME_MS_Z = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const API_KEY_FIELDS = ['created_at', 'expires_at', 'id', 'last_used_at', 'name', 'prefix', 'product', 'revoked_at', 'scopes', 'tenant_id'];

type WireKey = {
  id: string;
  tenant_id: string;
  name: string;
  prefix: string;
  product: string | null;
  scopes: string[];
  created_at: string;
  expires_at: string | null;
  last_used_at: string | null;
  revoked_at: string | null;
};

/** An API key exactly as API.md shapes it: every field present, no hash, times in ms UTC. */
function expectApiKeyShape(k: WireKey, where = '') {
  expect(Object.keys(k).sort(), where).toEqual(API_KEY_FIELDS);
  expect(k.id, where).toMatch(UUID_LOWER);
  expect(k.tenant_id, where).toMatch(UUID_LOWER);
  expect(k.prefix, where).toMatch(/^bp_[A-Za-z0-9_-]{8}$/);
  expect(Array.isArray(k.scopes), where).toBe(true);
  expect(k.created_at, where).toMatch(TIME_MS_Z);
  for (const field of ['expires_at', 'last_used_at', 'revoked_at'] as const) {
    if (k[field] !== null) expect(k[field], `${field} ${where}`).toMatch(TIME_MS_Z);
  }
  expect(k.product === null || typeof k.product === 'string', where).toBe(true);
}

/** The error body of API.md, with the expected status and code. */
function expectError(res: HttpResponse, status: number, code: string) {
  const where = `${res.status} ${res.text.slice(0, 400)}`;
  expect(res.status, where).toBe(status);
  expect(res.headers.get('content-type'), where).toMatch(/^application\/json\b/);
  expect(res.body?.code, where).toBe(code);
  expect(typeof res.body?.message, where).toBe('string');
  expect(res.text, where).not.toMatch(/"stack"|node_modules|\.ts:\d+|argon2id\|/);
  return res.body as { code: string; message: string; issues?: { path: (string | number)[]; message: string }[] };
}

/** A validation 400 with `issues`, one of them on `path` when given. */
function expectIssue(res: HttpResponse, path?: (string | number)[]) {
  const body = expectError(res, 400, 'BAD_REQUEST');
  expect(Array.isArray(body.issues), res.text).toBe(true);
  expect(body.issues!.length, res.text).toBeGreaterThan(0);
  for (const issue of body.issues!) {
    expect(Object.keys(issue).sort(), res.text).toEqual(['message', 'path']);
    expect(Array.isArray(issue.path), res.text).toBe(true);
  }
  if (path) expect(body.issues!.map((i) => i.path), res.text).toContainEqual(path);
}

async function createKey(s: TestServer, body: Record<string, unknown>) {
  const res = await s.http.post('/v1/api-keys', body);
  expect(res.status, res.text).toBe(201);
  return res.body as { api_key: WireKey; plaintext: string };
}

async function listKeys(s: TestServer, tenantId: string, query = '') {
  const res = await s.http.get(`/v1/api-keys?tenant_id=${tenantId}${query}`);
  expect(res.status, res.text).toBe(200);
  expect(Object.keys(res.body), res.text).toEqual(['items']);
  return { items: res.body.items as WireKey[], text: res.text };
}

/** The tenant's whole audit trail, as the text of the response (to search it for secrets). */
async function auditText(s: TestServer, tenantId: string) {
  const res = await s.http.get(`/v1/audit?tenant_id=${tenantId}&limit=500`);
  expect(res.status, res.text).toBe(200);
  return res.text;
}

/** The whole audit log of the service (every tenant, every page), as JSON text. */
async function wholeAuditLog(s: TestServer) {
  const pages: string[] = [];
  let cursor: string | null = null;
  do {
    const q = new URLSearchParams({ limit: '500' });
    if (cursor) q.set('cursor', cursor);
    const res = await s.http.get(`/v1/audit?${q}`);
    expect(res.status, res.text).toBe(200);
    pages.push(res.text);
    cursor = res.body.next_cursor;
  } while (cursor);
  return pages.join('\n');
}

/** A key row written straight through the Store (for states the API cannot produce fast). */
async function insertKeyRow(s: TestServer, row: Partial<ApiKey> & { tenantId: string }) {
  const id = randomUUID();
  const suffix = id.replace(/-/g, '').slice(0, 8);
  const key: ApiKey = {
    id,
    name: 'inserted',
    prefix: `bp_${suffix}`,
    hash: 'argon2id|AAAAAAAAAAAAAAAAAAAAAA==|AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=',
    product: null,
    scopes: [],
    createdAt: new Date(),
    expiresAt: null,
    lastUsedAt: null,
    revokedAt: null,
    ...row,
  };
  return s.store.transaction((tx) => tx.insertApiKey(key));
}

eachStore('API keys', (server) => {
  // ---------------------------------------------------------------- POST /v1/api-keys

  it('creates a key: 201 {api_key, plaintext}, the documented format, nulls present, no hash', async () => {
    const tenant = await newTenant(server());
    const before = Date.now();
    const res = await server().http.post('/v1/api-keys', { tenant_id: tenant.id, name: 'CI deploy' });
    const after = Date.now();
    expect(res.status, res.text).toBe(201);
    expect(res.headers.get('content-type')).toMatch(/^application\/json\b/);
    expect(Object.keys(res.body).sort()).toEqual(['api_key', 'plaintext']);
    const { api_key: key, plaintext } = res.body as { api_key: WireKey; plaintext: string };

    expect(plaintext).toMatch(PLAINTEXT);
    expect(key.prefix).toBe(`bp_${plaintext.slice(3, 11)}`);
    expect(key.prefix).toBe(plaintext.slice(0, 11));
    expectApiKeyShape(key);
    expect(key).toMatchObject({
      tenant_id: tenant.id,
      name: 'CI deploy',
      product: null,
      scopes: [],
      expires_at: null,
      last_used_at: null,
      revoked_at: null,
    });
    const created = Date.parse(key.created_at);
    expect(created).toBeGreaterThanOrEqual(before - 5);
    expect(created).toBeLessThanOrEqual(after + 5);
    // Never the hash, under any name.
    expect(res.text.replace(plaintext, '')).not.toMatch(/hash|argon2/i);
    // The 16 random bytes decode back from the 22 base64url characters.
    expect(Buffer.from(plaintext.slice(3), 'base64url')).toHaveLength(16);
  });

  it('issues a different plaintext and prefix every time', async () => {
    const tenant = await newTenant(server());
    const a = await createKey(server(), { tenant_id: tenant.id, name: 'a' });
    const b = await createKey(server(), { tenant_id: tenant.id, name: 'b' });
    expect(a.plaintext).not.toBe(b.plaintext);
    expect(a.api_key.prefix).not.toBe(b.api_key.prefix);
    expect(a.api_key.id).not.toBe(b.api_key.id);
  });

  it('binds a product, keeps scopes in order without duplicates, accepts an upper-case tenant id', async () => {
    const tenant = await newTenant(server());
    const { api_key: key } = await createKey(server(), {
      tenant_id: tenant.id.toUpperCase(),
      name: 'scoped',
      product: 'analytics',
      scopes: ['write', 'read', 'write', 'admin:all', 'read', 'a.b_c-d'],
    });
    expectApiKeyShape(key);
    expect(key.tenant_id).toBe(tenant.id);
    expect(key.product).toBe('analytics');
    expect(key.scopes).toEqual(['write', 'read', 'admin:all', 'a.b_c-d']);
    const { items } = await listKeys(server(), tenant.id);
    expect(items[0]!.scopes).toEqual(['write', 'read', 'admin:all', 'a.b_c-d']);
  });

  it('accepts 20 scopes of up to 64 characters; null product and scopes mean none', async () => {
    const tenant = await newTenant(server());
    const scopes = Array.from({ length: 20 }, (_, i) => `s${i}:${'x'.repeat(60)}`.slice(0, 64));
    scopes[19] = 'z'.repeat(64);
    const { api_key: key } = await createKey(server(), { tenant_id: tenant.id, name: 'many', scopes });
    expect(key.scopes).toEqual(scopes);
    const { api_key: bare } = await createKey(server(), {
      tenant_id: tenant.id,
      name: 'nulls',
      product: null,
      scopes: null,
      expires_at: null,
      ignored_field: 'unknown body fields are ignored',
    });
    expect(bare).toMatchObject({ product: null, scopes: [], expires_at: null });
  });

  it('rejects more than 20 scopes and scopes outside ^[a-z0-9:._-]{1,64}$ (400 with issues)', async () => {
    const tenant = await newTenant(server());
    const post = (scopes: unknown) => server().http.post('/v1/api-keys', { tenant_id: tenant.id, name: 'x', scopes });
    const tooMany = Array.from({ length: 21 }, (_, i) => `scope-${i}`);
    expectIssue(await post(tooMany), ['scopes']);
    for (const [i, bad] of [
      [0, 'Read'],
      [1, 'has space'],
      [0, ''],
      [0, 'x'.repeat(65)],
      [1, 'emoji-😀'],
      [0, 'slash/no'],
    ] as const) {
      const scopes = i === 0 ? [bad] : ['ok', bad];
      expectIssue(await post(scopes), ['scopes', i]);
    }
    expectIssue(await post('read'), ['scopes']);
    expectIssue(await post([1, 2]), ['scopes', 0]);
    expect((await listKeys(server(), tenant.id)).items).toEqual([]);
  });

  it('trims the name and counts code points: 1–100', async () => {
    const tenant = await newTenant(server());
    const { api_key: trimmed } = await createKey(server(), { tenant_id: tenant.id, name: ' \t Billing  bot \n' });
    expect(trimmed.name).toBe('Billing  bot');
    // 100 astral characters are 200 UTF-16 units but 100 code points.
    const hundred = '😀'.repeat(100);
    const { api_key: astral } = await createKey(server(), { tenant_id: tenant.id, name: `  ${hundred}  ` });
    expect(astral.name).toBe(hundred);

    const post = (name: unknown) => server().http.post('/v1/api-keys', { tenant_id: tenant.id, name });
    expectIssue(await post('😀'.repeat(101)), ['name']);
    expectIssue(await post('x'.repeat(101)), ['name']);
    expectIssue(await post(''), ['name']);
    expectIssue(await post('   \t\n '), ['name']);
    expectIssue(await post(42), ['name']);
    expectIssue(await server().http.post('/v1/api-keys', { tenant_id: tenant.id }), ['name']);
    // 100 plain characters padded with white space is fine.
    const { api_key: padded } = await createKey(server(), { tenant_id: tenant.id, name: `   ${'n'.repeat(100)}   ` });
    expect(padded.name).toBe('n'.repeat(100));
  });

  it('expires_at: any RFC 3339 offset, normalised to UTC Z with ms (sub-ms truncated)', async () => {
    const tenant = await newTenant(server());
    const cases: [string, string][] = [
      ['2099-01-01T12:00:00.123456+02:00', '2099-01-01T10:00:00.123Z'],
      ['2099-06-30t23:59:59.9999z', '2099-06-30T23:59:59.999Z'],
      ['2099-03-04T05:06:07-07:30', '2099-03-04T12:36:07.000Z'],
      ['2098-12-31T23:30:00.5Z', '2098-12-31T23:30:00.500Z'],
    ];
    for (const [given, stored] of cases) {
      const { api_key: key } = await createKey(server(), { tenant_id: tenant.id, name: given, expires_at: given });
      expect(key.expires_at, given).toBe(stored);
    }
    // The listing says the same thing as the creation.
    const listed = (await listKeys(server(), tenant.id)).items.map((k) => [k.name, k.expires_at]);
    expect(listed.sort()).toEqual(cases.map(([g, s]) => [g, s]).sort());
  });

  it('expires_at up to the last millisecond of year 9999 UTC; an offset that lands in year 10000 is 400', async () => {
    const tenant = await newTenant(server());
    const { api_key: key } = await createKey(server(), { tenant_id: tenant.id, name: 'far', expires_at: '9999-12-31T23:59:59.999Z' });
    expect(key.expires_at).toBe('9999-12-31T23:59:59.999Z');
    const { api_key: east } = await createKey(server(), { tenant_id: tenant.id, name: 'east', expires_at: '9999-12-31T23:59:59.999+01:00' });
    expect(east.expires_at).toBe('9999-12-31T22:59:59.999Z');
    // 23:59 behind UTC on the last day of 9999 is year 10000 in UTC: not writable as RFC 3339.
    const res = await server().http.post('/v1/api-keys', { tenant_id: tenant.id, name: 'x', expires_at: '9999-12-31T23:59:59.999-23:59' });
    expectIssue(res, ['expires_at']);
    // Nothing half-made: the tenant's keys still list, and only the two good ones.
    const { items } = await listKeys(server(), tenant.id);
    expect(items.map((k) => k.name)).toEqual(['east', 'far']);
    expect(await auditOf(server(), tenant.id, 'api_key.created')).toHaveLength(2);
  });

  it('expires_at must be a future RFC 3339 time with an offset (400 with issues)', async () => {
    const tenant = await newTenant(server());
    const post = (expires_at: unknown) => server().http.post('/v1/api-keys', { tenant_id: tenant.id, name: 'x', expires_at });
    expectIssue(await post('2020-01-01T00:00:00Z'), ['expires_at']);
    expectIssue(await post(new Date(Date.now() - 1000).toISOString()), ['expires_at']);
    // An hour ago written at +05:00: its wall-clock digits look 4 h ahead, but the instant is past.
    const hourAgo = new Date(Date.now() - 3_600_000);
    const local = new Date(hourAgo.getTime() + 5 * 3_600_000).toISOString().replace('Z', '+05:00');
    expectIssue(await post(local), ['expires_at']);
    for (const bad of ['2099-01-01T12:00:00', '2099-01-01 12:00:00Z', '2099-01-01', 'tomorrow', '2099-02-30T00:00:00Z', '2099-01-01T24:00:00Z', '']) {
      expectIssue(await post(bad), ['expires_at']);
    }
    expectIssue(await post(4102444800000), ['expires_at']);
    expect((await listKeys(server(), tenant.id)).items).toEqual([]);
  });

  it('validates the tenant id and product pattern before looking anything up (400)', async () => {
    const tenant = await newTenant(server());
    expectIssue(await server().http.post('/v1/api-keys', { name: 'x' }), ['tenant_id']);
    expectIssue(await server().http.post('/v1/api-keys', { tenant_id: 'not-a-uuid', name: 'x' }), ['tenant_id']);
    expectIssue(await server().http.post('/v1/api-keys', { tenant_id: tenant.id.replace(/-/g, ''), name: 'x' }), ['tenant_id']);
    expectIssue(await server().http.post('/v1/api-keys', { tenant_id: tenant.id, name: 'x', product: 'Analytics' }), ['product']);
    expectIssue(await server().http.post('/v1/api-keys', { tenant_id: tenant.id, name: 'x', product: 7 }), ['product']);
    // 400 comes before 404: an unknown tenant with a past expiry is a validation error.
    expectIssue(await server().http.post('/v1/api-keys', { tenant_id: randomUUID(), name: 'x', expires_at: '2001-01-01T00:00:00Z' }), [
      'expires_at',
    ]);
  });

  it('unknown tenant or product is 404; a non-requestable product may be bound', async () => {
    const tenant = await newTenant(server());
    expectError(await server().http.post('/v1/api-keys', { tenant_id: randomUUID(), name: 'x' }), 404, 'NOT_FOUND');
    expectError(await server().http.post('/v1/api-keys', { tenant_id: tenant.id, name: 'x', product: 'no-such-product' }), 404, 'NOT_FOUND');
    const { api_key: key } = await createKey(server(), { tenant_id: tenant.id, name: 'internal', product: 'internal-tools' });
    expect(key.product).toBe('internal-tools');
    const { api_key: sso } = await createKey(server(), { tenant_id: tenant.id, name: 'sso', product: 'enterprise-sso' });
    expect(sso.product).toBe('enterprise-sso');
  });

  it('a frozen tenant gets 409; an unknown product on it is still 404 (404 before 409)', async () => {
    const tenant = await newTenant(server(), { status: 'frozen' });
    expectError(await server().http.post('/v1/api-keys', { tenant_id: tenant.id, name: 'x' }), 409, 'CONFLICT');
    expectError(await server().http.post('/v1/api-keys', { tenant_id: tenant.id, name: 'x', product: 'analytics' }), 409, 'CONFLICT');
    expectError(await server().http.post('/v1/api-keys', { tenant_id: tenant.id, name: 'x', product: 'no-such-product' }), 404, 'NOT_FOUND');
    expect((await listKeys(server(), tenant.id, '&include_revoked=true')).items).toEqual([]);
    expect(await auditOf(server(), tenant.id, 'api_key.created')).toEqual([]);
  });

  it('trial and active tenants may both be issued keys', async () => {
    const trial = await newTenant(server());
    const active = await newTenant(server(), { status: 'active' });
    expect(trial.status).toBe('trial');
    expect(active.status).toBe('active');
    await createKey(server(), { tenant_id: trial.id, name: 'trial' });
    await createKey(server(), { tenant_id: active.id, name: 'active' });
  });

  it('records api_key.created (crud c, target api_key, product bound or null) and never the plaintext', async () => {
    const tenant = await newTenant(server());
    const bound = await createKey(server(), { tenant_id: tenant.id, name: 'bound key', product: 'automation', scopes: ['read'] });
    const unbound = await createKey(server(), { tenant_id: tenant.id, name: 'unbound key' });

    const events = await auditOf(server(), tenant.id, 'api_key.created');
    expect(events).toHaveLength(2);
    const [second, first] = events;
    expect(first).toMatchObject({
      tenant_id: tenant.id,
      product: 'automation',
      action: 'api_key.created',
      crud: 'c',
      target: { id: bound.api_key.id, type: 'api_key', name: 'bound key' },
      actor: { id: 'dev', name: 'dev', type: 'user' },
      is_failure: false,
    });
    expect(first.occurred_at).toBe(bound.api_key.created_at);
    expect(second).toMatchObject({
      tenant_id: tenant.id,
      product: null,
      action: 'api_key.created',
      crud: 'c',
      target: { id: unbound.api_key.id, type: 'api_key', name: 'unbound key' },
    });
    expect(Object.keys(first.target).sort()).toEqual(['id', 'name', 'type']);

    // Neither the plaintext nor its secret part nor the hash appears anywhere in the trail.
    const trail = await auditText(server(), tenant.id);
    for (const { plaintext } of [bound, unbound]) {
      expect(trail).not.toContain(plaintext);
      expect(trail).not.toContain(plaintext.slice(11));
    }
    expect(trail).not.toMatch(/argon2id\|/);
    // Nor anywhere in the whole audit log of the service.
    const everything = await wholeAuditLog(server());
    expect(everything).toContain(bound.api_key.id);
    expect(everything).not.toContain(bound.plaintext);
    expect(everything).not.toContain(unbound.plaintext);
  });

  it('a failed creation records no event and leaves no key', async () => {
    const tenant = await newTenant(server());
    await server().http.post('/v1/api-keys', { tenant_id: tenant.id, name: 'x', product: 'no-such-product' });
    await server().http.post('/v1/api-keys', { tenant_id: tenant.id, name: 'x', scopes: ['BAD'] });
    await server().http.post('/v1/api-keys', { tenant_id: tenant.id, name: 'x', expires_at: '2000-01-01T00:00:00Z' });
    expect(await auditOf(server(), tenant.id, 'api_key.created')).toEqual([]);
    expect((await listKeys(server(), tenant.id, '&include_revoked=true')).items).toEqual([]);
  });

  it('rejects a non-JSON or non-object body with 400/415, never 500', async () => {
    const tenant = await newTenant(server());
    const body = JSON.stringify({ tenant_id: tenant.id, name: 'x' });
    expectError(await server().http.post('/v1/api-keys', body, { headers: { 'content-type': 'text/plain' } }), 415, 'UNSUPPORTED_MEDIA_TYPE');
    expectError(await server().http.post('/v1/api-keys', '{"tenant_id":', { headers: { 'content-type': 'application/json' } }), 400, 'BAD_REQUEST');
    const arr = await server().http.post('/v1/api-keys', '[]', { headers: { 'content-type': 'application/json' } });
    expectError(arr, 400, 'BAD_REQUEST');
  });

  // ---------------------------------------------------------------- GET /v1/api-keys

  it('lists newest first, never with the plaintext or hash; other tenants’ keys are not listed', async () => {
    const tenant = await newTenant(server());
    const other = await newTenant(server());
    const made = [];
    for (const name of ['first', 'second', 'third']) made.push(await createKey(server(), { tenant_id: tenant.id, name }));
    const theirs = await createKey(server(), { tenant_id: other.id, name: 'theirs' });

    const { items, text } = await listKeys(server(), tenant.id);
    expect(items.map((k) => k.name)).toEqual(['third', 'second', 'first']);
    for (const k of items) expectApiKeyShape(k);
    for (let i = 1; i < items.length; i++) expect(items[i - 1]!.created_at >= items[i]!.created_at).toBe(true);
    // Each listed key is exactly what its creation returned.
    expect(items).toEqual(made.map((m) => m.api_key).reverse());
    for (const { plaintext } of [...made, theirs]) {
      expect(text).not.toContain(plaintext);
      expect(text).not.toContain(plaintext.slice(11));
    }
    expect(text).not.toMatch(/hash|argon2/i);
    expect(items.map((k) => k.id)).not.toContain(theirs.api_key.id);

    const upper = await server().http.get(`/v1/api-keys?tenant_id=${tenant.id.toUpperCase()}`);
    expect(upper.status, upper.text).toBe(200);
    expect(upper.body.items).toEqual(items);
  });

  it('lists nothing for a tenant without keys', async () => {
    const tenant = await newTenant(server());
    expect((await listKeys(server(), tenant.id)).items).toEqual([]);
    expect((await listKeys(server(), tenant.id, '&include_revoked=true')).items).toEqual([]);
  });

  it('excludes revoked keys unless include_revoked=true; includes expired keys', async () => {
    const tenant = await newTenant(server());
    const kept = await createKey(server(), { tenant_id: tenant.id, name: 'kept' });
    const gone = await createKey(server(), { tenant_id: tenant.id, name: 'gone' });
    const revoked = await server().http.delete(`/v1/api-keys/${gone.api_key.id}`);
    expect(revoked.status, revoked.text).toBe(200);
    // An expired (not revoked) key, written through the store: its expiry is already past.
    const expired = await insertKeyRow(server(), {
      tenantId: tenant.id,
      name: 'expired',
      createdAt: new Date(Date.now() - 60_000),
      expiresAt: new Date(Date.now() - 30_000),
    });

    const byDefault = (await listKeys(server(), tenant.id)).items;
    expect(byDefault.map((k) => k.name)).toEqual(['kept', 'expired']);
    expect(byDefault[1]).toMatchObject({ id: expired.id, revoked_at: null, expires_at: expired.expiresAt!.toISOString() });
    expect((await listKeys(server(), tenant.id, '&include_revoked=false')).items).toEqual(byDefault);

    const all = (await listKeys(server(), tenant.id, '&include_revoked=true')).items;
    expect(all.map((k) => k.name)).toEqual(['gone', 'kept', 'expired']);
    expect(all[0]).toEqual(revoked.body);
    expect(all[0]!.revoked_at).toMatch(TIME_MS_Z);
    expect(all[1]!.id).toBe(kept.api_key.id);
  });

  it('include_revoked is exactly true or false; other values are 400 with issues', async () => {
    const tenant = await newTenant(server());
    for (const value of ['yes', '1', '0', 'TRUE', 'False', 'true ', 'on']) {
      const res = await server().http.get(`/v1/api-keys?tenant_id=${tenant.id}&include_revoked=${encodeURIComponent(value)}`);
      expectIssue(res, ['include_revoked']);
    }
    expectIssue(await server().http.get(`/v1/api-keys?tenant_id=${tenant.id}&include_revoked=`), ['include_revoked']);
    expectIssue(await server().http.get(`/v1/api-keys?tenant_id=${tenant.id}&include_revoked`));
    expectIssue(await server().http.get(`/v1/api-keys?tenant_id=${tenant.id}&include_revoked=true&include_revoked=false`));
    expectIssue(await server().http.get(`/v1/api-keys?tenant_id=${tenant.id}&include_revoked=true&include_revoked=true`));
  });

  it('tenant_id is required, a UUID, single; unknown tenant is 404', async () => {
    const tenant = await newTenant(server());
    const other = await newTenant(server());
    expectIssue(await server().http.get('/v1/api-keys'), ['tenant_id']);
    expectIssue(await server().http.get('/v1/api-keys?include_revoked=true'), ['tenant_id']);
    expectIssue(await server().http.get('/v1/api-keys?tenant_id='), ['tenant_id']);
    expectIssue(await server().http.get('/v1/api-keys?tenant_id=acme'), ['tenant_id']);
    expectIssue(await server().http.get(`/v1/api-keys?tenant_id=${tenant.id}&tenant_id=${tenant.id}`));
    expectIssue(await server().http.get(`/v1/api-keys?tenant_id=${tenant.id}&tenant_id=${other.id}`));
    expectError(await server().http.get(`/v1/api-keys?tenant_id=${randomUUID()}`), 404, 'NOT_FOUND');
    // 400 before 404.
    expectIssue(await server().http.get(`/v1/api-keys?tenant_id=${randomUUID()}&include_revoked=yes`), ['include_revoked']);
  });

  // ---------------------------------------------------------------- DELETE /v1/api-keys/{id}

  it('revokes: 200 with the key and revoked_at; twice gives the same key and one audit event', async () => {
    const tenant = await newTenant(server());
    const { api_key: key, plaintext } = await createKey(server(), {
      tenant_id: tenant.id,
      name: 'to revoke',
      product: 'compliance',
      scopes: ['x'],
    });
    const before = Date.now();
    const first = await server().http.delete(`/v1/api-keys/${key.id}`);
    const after = Date.now();
    expect(first.status, first.text).toBe(200);
    expectApiKeyShape(first.body);
    expect(first.body).toEqual({ ...key, revoked_at: first.body.revoked_at });
    expect(first.body.revoked_at).toMatch(TIME_MS_Z);
    expect(Date.parse(first.body.revoked_at)).toBeGreaterThanOrEqual(before - 5);
    expect(Date.parse(first.body.revoked_at)).toBeLessThanOrEqual(after + 5);
    expect(first.text).not.toContain(plaintext);
    expect(first.text).not.toMatch(/hash|argon2/i);

    const second = await server().http.delete(`/v1/api-keys/${key.id}`);
    expect(second.status, second.text).toBe(200);
    expect(second.body).toEqual(first.body);
    const third = await server().http.delete(`/v1/api-keys/${key.id.toUpperCase()}`);
    expect(third.status, third.text).toBe(200);
    expect(third.body).toEqual(first.body);

    const events = await auditOf(server(), tenant.id, 'api_key.revoked');
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({
      tenant_id: tenant.id,
      product: 'compliance',
      action: 'api_key.revoked',
      crud: 'd',
      target: { id: key.id, type: 'api_key', name: 'to revoke' },
      occurred_at: first.body.revoked_at,
    });
    expect(await auditText(server(), tenant.id)).not.toContain(plaintext);
  });

  it('concurrent revokes agree on revoked_at and record one event', async () => {
    const tenant = await newTenant(server());
    const { api_key: key } = await createKey(server(), { tenant_id: tenant.id, name: 'raced' });
    const answers = await Promise.all(Array.from({ length: 5 }, () => server().http.delete(`/v1/api-keys/${key.id}`)));
    for (const a of answers) expect(a.status, a.text).toBe(200);
    expect(new Set(answers.map((a) => a.body.revoked_at)).size).toBe(1);
    expect(await auditOf(server(), tenant.id, 'api_key.revoked')).toHaveLength(1);
  });

  it('an unbound key’s revocation event has product null; a frozen tenant’s keys can still be revoked', async () => {
    const tenant = await newTenant(server(), { status: 'active' });
    const { api_key: key } = await createKey(server(), { tenant_id: tenant.id, name: 'left behind' });
    const cancel = await server().http.post(`/v1/tenants/${tenant.id}/cancel`);
    expect(cancel.status, cancel.text).toBe(200);
    // Cancelling revokes nothing.
    expect((await listKeys(server(), tenant.id)).items).toEqual([key]);
    const res = await server().http.delete(`/v1/api-keys/${key.id}`);
    expect(res.status, res.text).toBe(200);
    expect(res.body.revoked_at).toMatch(TIME_MS_Z);
    const [event] = await auditOf(server(), tenant.id, 'api_key.revoked');
    expect(event).toMatchObject({ product: null, crud: 'd', target: { id: key.id, type: 'api_key', name: 'left behind' } });
  });

  it('a malformed id is 400, an unknown one 404', async () => {
    for (const bad of ['not-a-uuid', '123', `${randomUUID()}x`, randomUUID().replace(/-/g, ''), `{${randomUUID()}}`]) {
      const res = await server().http.delete(`/v1/api-keys/${encodeURIComponent(bad)}`);
      expectIssue(res, ['id']);
    }
    expectError(await server().http.delete(`/v1/api-keys/${randomUUID()}`), 404, 'NOT_FOUND');
    expectError(await server().http.delete(`/v1/api-keys/${randomUUID().toUpperCase()}`), 404, 'NOT_FOUND');
  });
});
