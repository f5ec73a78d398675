/**
 * POST /v1/internal/api-keys/verify on both stores (API.md "Verify"): always 200 for any body
 * up to 1 MiB, the answer codes and their order, the valid shape, tRPC parity, and the
 * coalesced last_used_at.
 *
 * Creating a key and the first verify of a known prefix each cost one argon2id run
 * (~200 ms), so keys are shared where a test only reads, and kept to tens per store.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { request } from 'node:http';
import { beforeAll, expect, it, vi } from 'vitest';
import type { ApiKey, Entitlement } from '../src/db/store.js';
import { generatePlaintext } from '../src/keys/api-key-format.js';
import type { HttpResponse } from './harness/http.js';
import { eachStore, newTenant } from './harness/each-store.js';

const VERIFY = '/v1/internal/api-keys/verify';
const MIB = 1_048_576;
const TIME_MS_Z = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

type Tenant = Awaited<ReturnType<typeof newTenant>>;
type Created = { api_key: { id: string; tenant_id: string; prefix: string; product: string | null; scopes: string[]; expires_at: string | null }; plaintext: string };

/** A verify answer: 200, JSON, and nothing but the answer. */
function answer(res: HttpResponse) {
  const where = `${res.status} ${res.text.slice(0, 300)}`;
  expect(res.status, where).toBe(200);
  expect(res.headers.get('content-type'), where).toMatch(/^application\/json\b/);
  expect(res.body, where).toBeTypeOf('object');
  return res.body as Record<string, unknown>;
}

const invalid = (code: string) => ({ valid: false, code });

/** A key with its last characters changed: same prefix, wrong secret. */
function wrongSecret(plaintext: string, n = 4): string {
  const tail = plaintext.slice(-n);
  const swapped = [...tail].map((c) => (c === 'A' ? 'B' : 'A')).join('');
  return plaintext.slice(0, -n) + swapped;
}

eachStore('verify', (server) => {
  const verify = async (body: unknown, headers?: Record<string, string>) =>
    answer(await server().http.post(VERIFY, body, headers ? { headers } : {}));

  async function createKey(tenant: Tenant, extra: Record<string, unknown> = {}): Promise<Created> {
    const res = await server().http.post('/v1/api-keys', { tenant_id: tenant.id, name: 'verify test', ...extra });
    expect(res.status, res.text).toBe(201);
    return res.body as Created;
  }

  async function startTrial(tenant: Tenant, product: string) {
    const res = await server().http.post('/v1/catalog/trial-request', { tenant_id: tenant.id, product });
    expect(res.status, res.text).toBe(201);
    return res.body;
  }

  /** An entitlement written through the Store, for states the API reaches only with time. */
  async function insertEntitlement(tenantId: string, product: string, row: Partial<Entitlement>) {
    const at = new Date();
    const e: Entitlement = {
      id: randomUUID(),
      tenantId,
      product,
      status: 'trial',
      source: 'trial',
      startsAt: new Date(at.getTime() - 15 * 86_400_000),
      expiresAt: new Date(at.getTime() - 86_400_000),
      createdAt: at,
      updatedAt: at,
      ...row,
    };
    return server().store.transaction((tx) => tx.insertEntitlement(e));
  }

  /** A real key (hashed like the service does) written through the Store in any state. */
  async function insertKey(tenantId: string, row: Partial<ApiKey> = {}) {
    const plaintext = generatePlaintext();
    const hash = await server().deps.hasher.hash(plaintext);
    const key = await server().store.transaction((tx) =>
      tx.insertApiKey({
        id: randomUUID(),
        tenantId,
        name: 'inserted',
        prefix: plaintext.slice(0, 11),
        hash,
        product: null,
        scopes: [],
        createdAt: new Date(Date.now() - 60_000),
        expiresAt: null,
        lastUsedAt: null,
        revokedAt: null,
        ...row,
      }),
    );
    return { key, plaintext };
  }

  async function lastUsedAt(tenantId: string, keyId: string): Promise<string | null> {
    const res = await server().http.get(`/v1/api-keys?tenant_id=${tenantId}&include_revoked=true`);
    expect(res.status, res.text).toBe(200);
    const key = (res.body.items as { id: string; last_used_at: string | null }[]).find((k) => k.id === keyId);
    expect(key, `key ${keyId} listed`).toBeDefined();
    return key!.last_used_at;
  }

  // Shared, read-only fixtures: an active tenant with an analytics trial and two keys.
  let shop: Tenant;
  let bound: Created; // bound to analytics, scopes read/write, expiring in a year
  let unbound: Created; // no product, no scopes, no expiry
  beforeAll(async () => {
    shop = await newTenant(server(), { status: 'active' });
    await startTrial(shop, 'analytics');
    const inAYear = new Date(Date.now() + 365 * 86_400_000).toISOString();
    bound = await createKey(shop, { product: 'analytics', scopes: ['read', 'write', 'read'], expires_at: inAYear });
    unbound = await createKey(shop);
  });

  // ------------------------------------------------------------------ valid answers

  it('a valid key: exactly {valid, key_id, tenant_id, tenant_slug, product, scopes, expires_at}', async () => {
    const body = await verify({ key: bound.plaintext });
    expect(Object.keys(body).sort()).toEqual(['expires_at', 'key_id', 'product', 'scopes', 'tenant_id', 'tenant_slug', 'valid']);
    expect(body).toStrictEqual({
      valid: true,
      key_id: bound.api_key.id,
      tenant_id: shop.id,
      tenant_slug: shop.slug,
      product: 'analytics',
      scopes: ['read', 'write'],
      expires_at: bound.api_key.expires_at,
    });
    expect(body.expires_at).toMatch(TIME_MS_Z);
    // A second (cached) answer is the same answer.
    expect(await verify({ key: bound.plaintext })).toStrictEqual(body);
  });

  it('the product in question is the requested one, else the bound one, else null', async () => {
    // Bound key, same product asked: fine.
    expect(await verify({ key: bound.plaintext, product: 'analytics' })).toMatchObject({ valid: true, product: 'analytics' });
    // product null is "no product asked" (documented as string|null in openapi.yaml).
    expect(await verify({ key: bound.plaintext, product: null })).toMatchObject({ valid: true, product: 'analytics' });
    // Unbound key, nothing asked: valid with product null.
    expect(await verify({ key: unbound.plaintext })).toStrictEqual({
      valid: true,
      key_id: unbound.api_key.id,
      tenant_id: shop.id,
      tenant_slug: shop.slug,
      product: null,
      scopes: [],
      expires_at: null,
    });
    // Unbound key, a product asked that the tenant is entitled to.
    expect(await verify({ key: unbound.plaintext, product: 'analytics' })).toMatchObject({ valid: true, product: 'analytics' });
    // Unknown body fields are ignored.
    expect(await verify({ key: unbound.plaintext, extra: { deep: [1, 2] } })).toMatchObject({ valid: true, product: null });
  });

  it('a key without a bound product, asked about none, is valid without any entitlement', async () => {
    const bare = await newTenant(server());
    expect(bare.status).toBe('trial');
    const ents = await server().http.get(`/v1/entitlements?tenant_id=${bare.id}`);
    expect(ents.body.items).toEqual([]);
    const key = await createKey(bare, { scopes: ['only:this'] });
    expect(await verify({ key: key.plaintext })).toStrictEqual({
      valid: true,
      key_id: key.api_key.id,
      tenant_id: bare.id,
      tenant_slug: bare.slug,
      product: null,
      scopes: ['only:this'],
      expires_at: null,
    });
    // Asking about a product it has no entitlement to is NOT_ENTITLED.
    expect(await verify({ key: key.plaintext, product: 'analytics' })).toStrictEqual(invalid('NOT_ENTITLED'));
  });

  // ------------------------------------------------------------------ MALFORMED and bodies

  it('anything that is not {key: "bp_"+22, product?: string} is 200 MALFORMED', async () => {
    const real = unbound.plaintext;
    const json = { 'content-type': 'application/json' };
    const cases: [string, unknown, Record<string, string>?][] = [
      ['no body', undefined],
      ['empty JSON body', '', json],
      ['not JSON', 'not json at all', { 'content-type': 'text/plain' }],
      ['not JSON, typed JSON', '{"key":', json],
      ['JSON array', JSON.stringify([real]), json],
      ['JSON null', 'null', json],
      ['JSON number', '42', json],
      ['JSON string of the key', JSON.stringify(real), json],
      ['JSON true', 'true', json],
      ['empty object', {}],
      ['key null', { key: null }],
      ['key number', { key: 123 }],
      ['key object', { key: { value: real } }],
      ['key array', { key: [real] }],
      ['key boolean', { key: true }],
      ['product number', { key: real, product: 5 }],
      ['product object', { key: real, product: { key: 'analytics' } }],
      ['product array', { key: real, product: ['analytics'] }],
      ['product boolean', { key: real, product: false }],
      ['too short', { key: real.slice(0, -1) }],
      ['too long', { key: `${real}A` }],
      ['wrong prefix', { key: `pk_${real.slice(3)}` }],
      ['upper-case prefix', { key: `BP_${real.slice(3)}` }],
      ['base64 not base64url', { key: `bp_${'+'.repeat(22)}` }],
      ['padding', { key: `bp_${'A'.repeat(20)}==` }],
      ['leading white space', { key: ` ${real}` }],
      ['trailing newline', { key: `${real}\n` }],
      ['empty key', { key: '' }],
      ['prefix only', { key: real.slice(0, 11) }],
      ['field name in another case', { Key: real }],
      ['key under __proto__', `{"__proto__":{"key":"${real}"}}`, json],
      ['key under constructor', { constructor: { key: real } }],
    ];
    for (const [what, body, headers] of cases) {
      expect(await verify(body, headers), what).toStrictEqual(invalid('MALFORMED'));
    }
  });

  it('the body is parsed as JSON whatever its content type', async () => {
    const body = JSON.stringify({ key: unbound.plaintext });
    const ok = { valid: true, key_id: unbound.api_key.id };
    for (const type of ['text/plain', 'application/xml', 'application/octet-stream', 'application/x-www-form-urlencoded', 'application/json; charset=utf-8', 'Application/JSON', 'nonsense']) {
      expect(await verify(body, { 'content-type': type }), type).toMatchObject(ok);
    }
    // No content type at all.
    expect(answer(await server().http.post(VERIFY, Buffer.from(body)))).toMatchObject(ok);
    // A UTF-8 BOM-free body with surrounding white space is still JSON.
    expect(await verify(`\n  ${body}  \n`, { 'content-type': 'text/plain' })).toMatchObject(ok);
    // Not JSON under a non-JSON type is MALFORMED, never 415.
    expect(await verify(`key=${unbound.plaintext}`, { 'content-type': 'application/x-www-form-urlencoded' })).toStrictEqual(invalid('MALFORMED'));
    expect(await verify('<key>x</key>', { 'content-type': 'application/xml' })).toStrictEqual(invalid('MALFORMED'));
  });

  it('up to 1 MiB is answered; over 1 MiB is 413 with the error body, whatever the content type', async () => {
    const base = JSON.stringify({ key: unbound.plaintext, pad: '' });
    const exact = base.replace('"pad":""', `"pad":"${'x'.repeat(MIB - Buffer.byteLength(base))}"`);
    expect(Buffer.byteLength(exact)).toBe(MIB);
    expect(await verify(exact, { 'content-type': 'text/plain' })).toMatchObject({ valid: true, key_id: unbound.api_key.id });

    const over = exact.replace('"pad":"', '"pad":"x');
    expect(Buffer.byteLength(over)).toBe(MIB + 1);
    for (const headers of [{ 'content-type': 'text/plain' }, { 'content-type': 'application/json' }, {}] as Record<string, string>[]) {
      const res = await server().http.post(VERIFY, over, { headers });
      expect(res.status, res.text.slice(0, 200)).toBe(413);
      expect(res.headers.get('content-type')).toMatch(/^application\/json\b/);
      expect(Object.keys(res.body).sort()).toEqual(['code', 'message']);
      expect(res.body.code).toBe('PAYLOAD_TOO_LARGE');
      expect(res.body.message).toBeTypeOf('string');
    }
    // Not JSON and large: still 413, not MALFORMED.
    const res = await server().http.post(VERIFY, Buffer.alloc(2 * MIB, 0x61), { headers: { 'content-type': 'application/octet-stream' } });
    expect(res.status).toBe(413);
    expect(res.body.code).toBe('PAYLOAD_TOO_LARGE');
  });

  it('a chunked body (no Content-Length) over 1 MiB is 413 too', async () => {
    const { status, text } = await new Promise<{ status: number; text: string }>((resolve, reject) => {
      const req = request(`${server().url}${VERIFY}`, { method: 'POST', headers: { 'content-type': 'text/plain' } }, (res) => {
        let data = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (data += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text: data }));
        res.on('error', reject);
      });
      req.on('error', () => {}); // the server may stop reading once it has answered
      const chunk = Buffer.alloc(64 * 1024, 0x20);
      for (let i = 0; i < 20; i++) req.write(chunk); // 1.25 MiB of white space
      req.end();
    });
    expect(status).toBe(413);
    expect(JSON.parse(text)).toMatchObject({ code: 'PAYLOAD_TOO_LARGE' });
  });

  it('verify takes only POST: another method gets the JSON error body, not a verify answer', async () => {
    for (const method of ['GET', 'PUT', 'DELETE']) {
      const res = await server().http.request(method, VERIFY);
      expect([404, 405], `${method} ${res.status}`).toContain(res.status);
      expect(res.headers.get('content-type')).toMatch(/^application\/json\b/);
      expect(['NOT_FOUND', 'METHOD_NOT_SUPPORTED']).toContain(res.body.code);
    }
  });

  it('concurrent first verifies of one key all get the same valid answer', async () => {
    const tenant = await newTenant(server(), { status: 'active' });
    const key = await createKey(tenant, { scopes: ['a'] });
    const answers = await Promise.all(Array.from({ length: 8 }, () => verify({ key: key.plaintext })));
    for (const a of answers) expect(a).toStrictEqual(answers[0]);
    expect(answers[0]).toMatchObject({ valid: true, key_id: key.api_key.id, scopes: ['a'] });
  });

  // ------------------------------------------------------------------ NOT_FOUND

  it('an unknown well-formed key is NOT_FOUND', async () => {
    expect(await verify({ key: generatePlaintext() })).toStrictEqual(invalid('NOT_FOUND'));
    expect(await verify({ key: `bp_${randomBytes(16).toString('base64url')}`, product: 'analytics' })).toStrictEqual(invalid('NOT_FOUND'));
    expect(await verify({ key: `bp_${'_'.repeat(11)}${'-'.repeat(11)}` })).toStrictEqual(invalid('NOT_FOUND'));
  });

  it('a known prefix with a wrong secret is NOT_FOUND, every time, and the real key stays valid', async () => {
    for (const n of [1, 4, 14]) {
      const forged = wrongSecret(bound.plaintext, n);
      expect(forged.slice(0, 11)).toBe(bound.api_key.prefix);
      expect(forged).not.toBe(bound.plaintext);
      expect(await verify({ key: forged }), `last ${n}`).toStrictEqual(invalid('NOT_FOUND'));
      expect(await verify({ key: forged }), `last ${n} again`).toStrictEqual(invalid('NOT_FOUND'));
      expect(await verify({ key: forged, product: 'analytics' })).toStrictEqual(invalid('NOT_FOUND'));
    }
    expect(await verify({ key: bound.plaintext })).toMatchObject({ valid: true, key_id: bound.api_key.id });
  });

  // ------------------------------------------------------------------ REVOKED, EXPIRED

  it('a revoked key is REVOKED, even right after a valid (cached) answer', async () => {
    const tenant = await newTenant(server(), { status: 'active' });
    const key = await createKey(tenant);
    expect(await verify({ key: key.plaintext })).toMatchObject({ valid: true });
    expect(await verify({ key: key.plaintext })).toMatchObject({ valid: true });
    const res = await server().http.delete(`/v1/api-keys/${key.api_key.id}`);
    expect(res.status, res.text).toBe(200);
    expect(await verify({ key: key.plaintext })).toStrictEqual(invalid('REVOKED'));
    expect(await verify({ key: key.plaintext, product: 'analytics' })).toStrictEqual(invalid('REVOKED'));
    // A wrong secret for a revoked key's prefix is still NOT_FOUND (NOT_FOUND comes first).
    expect(await verify({ key: wrongSecret(key.plaintext) })).toStrictEqual(invalid('NOT_FOUND'));
  });

  it('an expired key is EXPIRED (written through the store)', async () => {
    const tenant = await newTenant(server(), { status: 'active' });
    const { plaintext } = await insertKey(tenant.id, { expiresAt: new Date(Date.now() - 1000) });
    expect(await verify({ key: plaintext })).toStrictEqual(invalid('EXPIRED'));
    expect(await verify({ key: plaintext, product: 'analytics' })).toStrictEqual(invalid('EXPIRED'));
  });

  it('time passes: a key and a trial expire while their valid answers are cached', async () => {
    const tenant = await newTenant(server(), { status: 'active' });
    // An unbound key asked about a product whose trial runs out with the other key.
    const unboundKey = await createKey(tenant);
    const soon = new Date(Date.now() + 3000);
    await insertEntitlement(tenant.id, 'automation', { startsAt: new Date(), expiresAt: soon });
    const expiring = await createKey(tenant, { expires_at: soon.toISOString() });
    expect(expiring.api_key.expires_at).toBe(soon.toISOString());

    /**
     * An answer judged against the clock: valid when it surely came before `soon`, the
     * failure when it surely came after (on a very busy machine argon2 may eat the window).
     */
    const around = async (body: unknown, valid: Record<string, unknown>, failure: string) => {
      const sent = Date.now();
      const got = await verify(body);
      const received = Date.now();
      if (received < soon.getTime()) expect(got, 'before expiry').toStrictEqual(valid);
      else if (sent >= soon.getTime()) expect(got, 'after expiry').toStrictEqual(invalid(failure));
      else expect([valid, invalid(failure)]).toContainEqual(got);
    };
    const validExpiring = {
      valid: true,
      key_id: expiring.api_key.id,
      tenant_id: tenant.id,
      tenant_slug: tenant.slug,
      product: null,
      scopes: [],
      expires_at: soon.toISOString(),
    };
    const validAutomation = { ...validExpiring, key_id: unboundKey.api_key.id, product: 'automation', expires_at: null };
    // Cold, then cached.
    for (let i = 0; i < 2; i++) {
      await around({ key: expiring.plaintext }, validExpiring, 'EXPIRED');
      await around({ key: unboundKey.plaintext, product: 'automation' }, validAutomation, 'NOT_ENTITLED');
    }

    await sleep(Math.max(0, soon.getTime() - Date.now()) + 50);
    expect(await verify({ key: expiring.plaintext })).toStrictEqual(invalid('EXPIRED'));
    expect(await verify({ key: unboundKey.plaintext, product: 'automation' })).toStrictEqual(invalid('NOT_ENTITLED'));
    expect(await verify({ key: unboundKey.plaintext })).toMatchObject({ valid: true, product: null });
    // The expired key is still listed (expired is not revoked).
    const list = await server().http.get(`/v1/api-keys?tenant_id=${tenant.id}`);
    expect(list.body.items.map((k: { id: string }) => k.id)).toContain(expiring.api_key.id);
  });

  // ------------------------------------------------------------------ TENANT_FROZEN

  it('cancelling a tenant revokes nothing: its keys answer TENANT_FROZEN', async () => {
    const tenant = await newTenant(server(), { status: 'active' });
    await startTrial(tenant, 'compliance');
    const key = await createKey(tenant, { product: 'compliance' });
    const other = await createKey(tenant);
    expect(await verify({ key: key.plaintext })).toMatchObject({ valid: true, product: 'compliance' });
    expect(await verify({ key: other.plaintext })).toMatchObject({ valid: true, product: null });

    const cancel = await server().http.post(`/v1/tenants/${tenant.id}/cancel`);
    expect(cancel.status, cancel.text).toBe(200);
    expect(cancel.body.status).toBe('frozen');

    expect(await verify({ key: key.plaintext })).toStrictEqual(invalid('TENANT_FROZEN'));
    expect(await verify({ key: other.plaintext })).toStrictEqual(invalid('TENANT_FROZEN'));
    // Frozen comes before entitlement checks: a product it is not entitled to still says frozen.
    expect(await verify({ key: other.plaintext, product: 'automation' })).toStrictEqual(invalid('TENANT_FROZEN'));
    expect(await verify({ key: other.plaintext, product: 'no-such-product' })).toStrictEqual(invalid('TENANT_FROZEN'));
    expect(await verify({ key: key.plaintext, product: 'analytics' })).toStrictEqual(invalid('TENANT_FROZEN'));
    // Activate is not possible from frozen; the keys are still there, not revoked.
    expect((await server().http.post(`/v1/tenants/${tenant.id}/activate`)).status).toBe(409);
    const list = await server().http.get(`/v1/api-keys?tenant_id=${tenant.id}`);
    expect(list.body.items).toHaveLength(2);
    for (const k of list.body.items) expect(k.revoked_at).toBeNull();
  });

  // ------------------------------------------------------------------ NOT_ENTITLED

  it('NOT_ENTITLED: a bound product without entitlement, any non-requestable product, a different or unknown product', async () => {
    const tenant = await newTenant(server(), { status: 'active' });
    await startTrial(tenant, 'analytics');
    await startTrial(tenant, 'automation');
    const noEnt = await createKey(tenant, { product: 'compliance' });
    const internal = await createKey(tenant, { product: 'internal-tools' });
    const analytics = await createKey(tenant, { product: 'analytics' });
    const free = await createKey(tenant);

    expect(await verify({ key: noEnt.plaintext })).toStrictEqual(invalid('NOT_ENTITLED'));
    expect(await verify({ key: noEnt.plaintext, product: 'compliance' })).toStrictEqual(invalid('NOT_ENTITLED'));
    expect(await verify({ key: internal.plaintext })).toStrictEqual(invalid('NOT_ENTITLED'));
    // The tenant is entitled to automation, but this key is bound to analytics.
    expect(await verify({ key: analytics.plaintext })).toMatchObject({ valid: true, product: 'analytics' });
    expect(await verify({ key: analytics.plaintext, product: 'automation' })).toStrictEqual(invalid('NOT_ENTITLED'));
    // Products that do not exist, or are no product key at all, are NOT_ENTITLED (not MALFORMED).
    for (const product of ['no-such-product', 'Analytics', '', ' analytics', 'analytics ', 'x'.repeat(300)]) {
      expect(await verify({ key: free.plaintext, product }), JSON.stringify(product).slice(0, 20)).toStrictEqual(invalid('NOT_ENTITLED'));
      expect(await verify({ key: analytics.plaintext, product }), JSON.stringify(product).slice(0, 20)).toStrictEqual(invalid('NOT_ENTITLED'));
    }
    expect(await verify({ key: free.plaintext, product: 'automation' })).toMatchObject({ valid: true, product: 'automation' });
    expect(await verify({ key: free.plaintext, product: 'enterprise-sso' })).toStrictEqual(invalid('NOT_ENTITLED'));
  });

  it('product strings no store can hold (NUL, lone surrogate) or object-ish names are NOT_ENTITLED, never a 500', async () => {
    for (const product of ['ana\u0000lytics', '\u0000', 'analytics\ud800', '\udc00', '__proto__', 'constructor', 'toString', 'hasOwnProperty']) {
      const what = JSON.stringify(product);
      expect(await verify({ key: unbound.plaintext, product }), what).toStrictEqual(invalid('NOT_ENTITLED'));
      expect(await verify({ key: bound.plaintext, product }), what).toStrictEqual(invalid('NOT_ENTITLED'));
    }
    // Still fine afterwards.
    expect(await verify({ key: bound.plaintext })).toMatchObject({ valid: true, product: 'analytics' });
  });

  it('NOT_ENTITLED turns valid as soon as the tenant starts a trial (no stale cached answer)', async () => {
    const tenant = await newTenant(server());
    const key = await createKey(tenant, { product: 'automation' });
    expect(await verify({ key: key.plaintext })).toStrictEqual(invalid('NOT_ENTITLED'));
    expect(await verify({ key: key.plaintext })).toStrictEqual(invalid('NOT_ENTITLED'));
    await startTrial(tenant, 'automation');
    expect(await verify({ key: key.plaintext })).toMatchObject({ valid: true, product: 'automation', tenant_id: tenant.id });
  });

  it('entitlement states: an expired trial, an expired or revoked row deny; active and running trials grant', async () => {
    const tenant = await newTenant(server(), { status: 'active' });
    const key = await createKey(tenant);
    const day = 86_400_000;
    await insertEntitlement(tenant.id, 'analytics', { status: 'trial', expiresAt: new Date(Date.now() - 1000) });
    await insertEntitlement(tenant.id, 'automation', { status: 'expired', source: 'trial' });
    await insertEntitlement(tenant.id, 'compliance', { status: 'revoked', source: 'sales', expiresAt: null });
    await insertEntitlement(tenant.id, 'enterprise-sso', { status: 'active', source: 'sales', expiresAt: null });
    await insertEntitlement(tenant.id, 'internal-tools', { status: 'trial', expiresAt: new Date(Date.now() + day) });

    // The API agrees that the first trial is expired.
    const ents = await server().http.get(`/v1/entitlements?tenant_id=${tenant.id}`);
    expect(ents.body.items.find((e: { product: string }) => e.product === 'analytics').status).toBe('expired');

    expect(await verify({ key: key.plaintext, product: 'analytics' })).toStrictEqual(invalid('NOT_ENTITLED'));
    expect(await verify({ key: key.plaintext, product: 'automation' })).toStrictEqual(invalid('NOT_ENTITLED'));
    expect(await verify({ key: key.plaintext, product: 'compliance' })).toStrictEqual(invalid('NOT_ENTITLED'));
    expect(await verify({ key: key.plaintext, product: 'enterprise-sso' })).toMatchObject({ valid: true, product: 'enterprise-sso' });
    expect(await verify({ key: key.plaintext, product: 'internal-tools' })).toMatchObject({ valid: true, product: 'internal-tools' });
    // A key bound to the product whose trial expired.
    const boundToExpired = await createKey(tenant, { product: 'analytics' });
    expect(await verify({ key: boundToExpired.plaintext })).toStrictEqual(invalid('NOT_ENTITLED'));
  });

  // ------------------------------------------------------------------ order of checks

  it('checks run in order: NOT_FOUND → REVOKED → EXPIRED → TENANT_FROZEN → NOT_ENTITLED', async () => {
    const tenant = await newTenant(server(), { status: 'active' });
    const past = new Date(Date.now() - 60_000);
    // Revoked and expired, bound to a product the tenant lacks.
    const revokedExpired = await insertKey(tenant.id, { revokedAt: past, expiresAt: past, product: 'compliance' });
    // Expired (not revoked), bound to a product the tenant lacks.
    const expired = await insertKey(tenant.id, { expiresAt: past, product: 'compliance' });
    // A live key bound to a product the tenant lacks.
    const live = await createKey(tenant, { product: 'compliance' });
    // A revoked key (through the API).
    const revoked = await createKey(tenant, { product: 'compliance' });
    expect((await server().http.delete(`/v1/api-keys/${revoked.api_key.id}`)).status).toBe(200);

    expect(await verify({ key: revokedExpired.plaintext })).toStrictEqual(invalid('REVOKED'));
    expect(await verify({ key: expired.plaintext })).toStrictEqual(invalid('EXPIRED'));
    expect(await verify({ key: live.plaintext })).toStrictEqual(invalid('NOT_ENTITLED'));
    expect(await verify({ key: wrongSecret(revokedExpired.plaintext) })).toStrictEqual(invalid('NOT_FOUND'));

    const cancel = await server().http.post(`/v1/tenants/${tenant.id}/cancel`);
    expect(cancel.status, cancel.text).toBe(200);
    // Frozen now: revoked and expired still win over frozen; frozen wins over not entitled.
    expect(await verify({ key: revokedExpired.plaintext })).toStrictEqual(invalid('REVOKED'));
    expect(await verify({ key: revoked.plaintext })).toStrictEqual(invalid('REVOKED'));
    expect(await verify({ key: expired.plaintext })).toStrictEqual(invalid('EXPIRED'));
    expect(await verify({ key: live.plaintext })).toStrictEqual(invalid('TENANT_FROZEN'));
    expect(await verify({ key: live.plaintext, product: 'no-such-product' })).toStrictEqual(invalid('TENANT_FROZEN'));
    // MALFORMED before everything: a non-string product on a revoked key.
    expect(await verify({ key: revoked.plaintext, product: 1 })).toStrictEqual(invalid('MALFORMED'));
  });

  // ------------------------------------------------------------------ tRPC parity

  it('verify over tRPC (POST /trpc/apiKeys.verify) gives the same answers', async () => {
    const tenant = await newTenant(server(), { status: 'active' });
    const revoked = await createKey(tenant);
    expect((await server().http.delete(`/v1/api-keys/${revoked.api_key.id}`)).status).toBe(200);
    const bodies: unknown[] = [
      { key: bound.plaintext },
      { key: bound.plaintext, product: 'automation' },
      { key: unbound.plaintext },
      { key: unbound.plaintext, product: 'analytics' },
      { key: revoked.plaintext },
      { key: wrongSecret(bound.plaintext) },
      { key: generatePlaintext() },
      { key: 'nope' },
      { key: 5 },
      { key: bound.plaintext, product: 5 },
      {},
    ];
    for (const body of bodies) {
      const rest = answer(await server().http.post(VERIFY, body));
      const trpc = await server().http.post('/trpc/apiKeys.verify', body);
      expect(trpc.status, trpc.text).toBe(200);
      expect(trpc.body?.result?.data, `${JSON.stringify(body)} → ${trpc.text}`).toStrictEqual(rest);
    }
  });

  // ------------------------------------------------------------------ last_used_at

  it('last_used_at is written by the usage batcher, not by each verify', async () => {
    const tenant = await newTenant(server(), { status: 'active' });
    const key = await createKey(tenant);
    const denied = await createKey(tenant, { product: 'automation' }); // not entitled
    await server().deps.usage.flush();

    // Watches the store's batch write: the batcher's own 60 s timer may fire meanwhile.
    const touches = vi.spyOn(server().store, 'touchApiKeys');
    const before = Date.now();
    for (let i = 0; i < 3; i++) expect(await verify({ key: key.plaintext })).toMatchObject({ valid: true });
    const after = Date.now();
    expect(await verify({ key: denied.plaintext })).toStrictEqual(invalid('NOT_ENTITLED'));
    // Nothing written yet: verifies only note the time in memory.
    const stillNull = await lastUsedAt(tenant.id, key.api_key.id);
    const timerFired = touches.mock.calls.length > 0;
    touches.mockRestore();
    if (!timerFired) {
      expect(stillNull).toBeNull();
      const created = await server().http.get(`/v1/api-keys?tenant_id=${tenant.id}`);
      expect(created.body.items.find((k: { id: string }) => k.id === key.api_key.id)).toEqual(key.api_key);
    }

    await server().deps.usage.flush();
    const used = await lastUsedAt(tenant.id, key.api_key.id);
    expect(used).toMatch(TIME_MS_Z);
    expect(Date.parse(used!)).toBeGreaterThanOrEqual(before - 5);
    expect(Date.parse(used!)).toBeLessThanOrEqual(after + 5);
    // A verify that failed records no use.
    expect(await lastUsedAt(tenant.id, denied.api_key.id)).toBeNull();

    // Later uses move it forward at the next flush; a flush with nothing noted changes nothing.
    await sleep(5);
    expect(await verify({ key: key.plaintext })).toMatchObject({ valid: true });
    await server().deps.usage.flush();
    const later = await lastUsedAt(tenant.id, key.api_key.id);
    expect(Date.parse(later!)).toBeGreaterThan(Date.parse(used!));
    await server().deps.usage.flush();
    expect(await lastUsedAt(tenant.id, key.api_key.id)).toBe(later);
  });

  it('revoked, expired and frozen answers record no use', async () => {
    const tenant = await newTenant(server(), { status: 'active' });
    const revoked = await createKey(tenant);
    expect((await server().http.delete(`/v1/api-keys/${revoked.api_key.id}`)).status).toBe(200);
    const expired = await insertKey(tenant.id, { expiresAt: new Date(Date.now() - 1000) });
    await server().deps.usage.flush();
    expect(await verify({ key: revoked.plaintext })).toStrictEqual(invalid('REVOKED'));
    expect(await verify({ key: expired.plaintext })).toStrictEqual(invalid('EXPIRED'));
    await server().deps.usage.flush();
    expect(await lastUsedAt(tenant.id, revoked.api_key.id)).toBeNull();
    expect(await lastUsedAt(tenant.id, expired.key.id)).toBeNull();
  });

  it('verify records no audit event and changes no key', async () => {
    const tenant = await newTenant(server(), { status: 'active' });
    const key = await createKey(tenant);
    const trailBefore = await server().http.get(`/v1/audit?tenant_id=${tenant.id}&limit=500`);
    expect(await verify({ key: key.plaintext })).toMatchObject({ valid: true });
    expect(await verify({ key: wrongSecret(key.plaintext) })).toStrictEqual(invalid('NOT_FOUND'));
    const trailAfter = await server().http.get(`/v1/audit?tenant_id=${tenant.id}&limit=500`);
    expect(trailAfter.body.items).toEqual(trailBefore.body.items);
    expect(trailAfter.text).not.toContain(key.plaintext);
  });
});
