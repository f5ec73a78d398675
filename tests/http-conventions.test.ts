/**
 * API.md's HTTP conventions over REST: body size and content types, JSON parsing, unknown
 * routes and wrong methods, query parameters, UUID forms, the error body, health endpoints.
 * Transport rules run on the memory store; rules whose answer depends on the store run on both.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HttpResponse } from './harness/http.js';
import { startServer, type TestServer } from './harness/server.js';
import { eachStore, newTenant, randomSlug } from './harness/each-store.js';

const MIB = 1_048_576;
const ERROR_CODES = [
  'BAD_REQUEST',
  'UNAUTHORIZED',
  'FORBIDDEN',
  'NOT_FOUND',
  'METHOD_NOT_SUPPORTED',
  'CONFLICT',
  'PAYLOAD_TOO_LARGE',
  'UNSUPPORTED_MEDIA_TYPE',
  'TOO_MANY_REQUESTS',
  'INTERNAL_SERVER_ERROR',
  'SERVICE_UNAVAILABLE',
];
const STATUS_OF: Record<string, number> = {
  BAD_REQUEST: 400,
  NOT_FOUND: 404,
  METHOD_NOT_SUPPORTED: 405,
  PAYLOAD_TOO_LARGE: 413,
  UNSUPPORTED_MEDIA_TYPE: 415,
};

/** API.md's error body, exactly: `{code, message}` or `{code, message, issues}`, as JSON. */
function expectErrorBody(res: HttpResponse, status?: number, code?: string) {
  const where = `${res.status} ${res.text.slice(0, 300)}`;
  if (status !== undefined) expect(res.status, where).toBe(status);
  expect(res.headers.get('content-type'), where).toMatch(/^application\/json\b/);
  expect(res.text.trimStart().startsWith('<'), where).toBe(false);
  const body = res.body as Record<string, unknown>;
  expect(body, where).toBeTypeOf('object');
  const keys = Object.keys(body).sort();
  expect([['code', 'message'], ['code', 'issues', 'message']], where).toContainEqual(keys);
  expect(ERROR_CODES, where).toContain(body.code);
  if (code !== undefined) expect(body.code, where).toBe(code);
  if (STATUS_OF[body.code as string]) expect(res.status, where).toBe(STATUS_OF[body.code as string]);
  expect(body.message, where).toBeTypeOf('string');
  expect((body.message as string).length, where).toBeGreaterThan(0);
  expect(res.text, where).not.toMatch(/"stack"|"data"|\bat \S+ \(|node_modules|\.ts:\d+|SELECT |INSERT /);
  if ('issues' in body) {
    expect(Array.isArray(body.issues), where).toBe(true);
    expect((body.issues as unknown[]).length, where).toBeGreaterThan(0);
    for (const issue of body.issues as Record<string, unknown>[]) {
      expect(Object.keys(issue).sort(), where).toEqual(['message', 'path']);
      expect(Array.isArray(issue.path), where).toBe(true);
      for (const seg of issue.path as unknown[]) expect(['string', 'number'], where).toContain(typeof seg);
      expect(issue.message, where).toBeTypeOf('string');
    }
  }
  return body as { code: string; message: string; issues?: { path: (string | number)[]; message: string }[] };
}

/** A validation 400: the error body with `issues`, one of them on `path`. */
function expectIssueOn(res: HttpResponse, path: (string | number)[]) {
  const body = expectErrorBody(res, 400, 'BAD_REQUEST');
  expect(body.issues, res.text).toBeDefined();
  expect(body.issues!.map((i) => i.path), res.text).toContainEqual(path);
}

/** A JSON tenant-create body of exactly `size` bytes (padded with an ignored field). */
function tenantBodyOfSize(size: number, slug: string): string {
  const base = JSON.stringify({ slug, name: 'Padded', pad: '' });
  const body = base.replace('"pad":""', `"pad":"${'x'.repeat(size - Buffer.byteLength(base))}"`);
  expect(Buffer.byteLength(body)).toBe(size);
  return body;
}

describe('HTTP conventions [memory store]', () => {
  let s: TestServer;
  beforeAll(async () => {
    s = await startServer('memory');
  });
  afterAll(async () => {
    await s?.close();
  });
  const http = () => s.http;

  describe('request bodies', () => {
    it('a body over 1 MiB is 413 with the error body, whatever its content type', async () => {
      const big = 'x'.repeat(MIB + 1);
      const types: Record<string, string>[] = [{ 'content-type': 'application/json' }, { 'content-type': 'text/plain' }, { 'content-type': 'application/octet-stream' }, {}];
      for (const headers of types) {
        const res = await http().post('/v1/tenants', big, { headers });
        expectErrorBody(res, 413, 'PAYLOAD_TOO_LARGE');
      }
      const bigJson = tenantBodyOfSize(MIB + 1, randomSlug());
      expectErrorBody(await http().post('/v1/tenants', bigJson, { headers: { 'content-type': 'application/json' } }), 413, 'PAYLOAD_TOO_LARGE');
      expectErrorBody(await http().post('/v1/audit', bigJson, { headers: { 'content-type': 'application/json' } }), 413, 'PAYLOAD_TOO_LARGE');
    });

    it('413 includes verify (which otherwise accepts any body) and bodies on DELETE', async () => {
      const big = 'x'.repeat(MIB + 1);
      expectErrorBody(await http().post('/v1/internal/api-keys/verify', big, { headers: { 'content-type': 'text/plain' } }), 413, 'PAYLOAD_TOO_LARGE');
      expectErrorBody(await http().post('/v1/internal/api-keys/verify', big, { headers: { 'content-type': 'application/json' } }), 413, 'PAYLOAD_TOO_LARGE');
      expectErrorBody(await http().delete(`/v1/api-keys/${randomUUID()}`, { body: big }), 413, 'PAYLOAD_TOO_LARGE');
    });

    it('a streamed body (no Content-Length) over 1 MiB is 413 too', async () => {
      const chunk = new Uint8Array(64 * 1024).fill(0x78);
      let sent = 0;
      const stream = new ReadableStream<Uint8Array>({
        pull(controller) {
          if (sent > MIB + chunk.length) return controller.close();
          sent += chunk.length;
          controller.enqueue(chunk);
        },
      });
      const res = await fetch(`${s.url}/v1/tenants`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: stream,
        duplex: 'half',
      } as RequestInit);
      const text = await res.text();
      expectErrorBody({ status: res.status, headers: res.headers, text, body: JSON.parse(text) }, 413, 'PAYLOAD_TOO_LARGE');
    });

    it('a body of exactly 1 MiB is accepted', async () => {
      const slug = randomSlug();
      const res = await http().post('/v1/tenants', tenantBodyOfSize(MIB, slug), { headers: { 'content-type': 'application/json' } });
      expect(res.status, res.text).toBe(201);
      expect(res.body).toMatchObject({ slug, name: 'Padded' });
      expect(res.body).not.toHaveProperty('pad');
    });

    it('a body with a content type other than JSON is 415 UNSUPPORTED_MEDIA_TYPE', async () => {
      const body = JSON.stringify({ slug: randomSlug(), name: 'x' });
      for (const type of ['text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/jsonx', 'text/json', 'application/xml']) {
        const res = await http().post('/v1/tenants', body, { headers: { 'content-type': type } });
        expectErrorBody(res, 415, 'UNSUPPORTED_MEDIA_TYPE');
      }
      const activate = await http().post(`/v1/tenants/${randomUUID()}/activate`, '{}', { headers: { 'content-type': 'text/plain' } });
      expectErrorBody(activate, 415, 'UNSUPPORTED_MEDIA_TYPE');
    });

    it('a JSON body with no content type is 415', async () => {
      const res = await http().post('/v1/tenants', JSON.stringify({ slug: randomSlug(), name: 'x' }));
      expectErrorBody(res, 415, 'UNSUPPORTED_MEDIA_TYPE');
      expectErrorBody(await http().post('/v1/audit', JSON.stringify({ action: 'a.b', actor: { id: 'x' } })), 415, 'UNSUPPORTED_MEDIA_TYPE');
    });

    it('application/json with parameters or in another letter case is accepted', async () => {
      for (const type of ['application/json; charset=utf-8', 'application/json;charset=UTF-8', 'Application/JSON', 'APPLICATION/JSON; charset=utf-8']) {
        const slug = randomSlug();
        const res = await http().post('/v1/tenants', JSON.stringify({ slug, name: 'Typed' }), { headers: { 'content-type': type } });
        expect(res.status, `${type}: ${res.text}`).toBe(201);
        expect(res.body.slug).toBe(slug);
      }
    });

    it('a body that is not valid JSON is 400 BAD_REQUEST', async () => {
      for (const text of ['{"slug":', '{slug: "abc"}', "{'a':1}", '{"a":1} trailing', 'undefined', '\u00ff']) {
        const res = await http().post('/v1/tenants', text, { headers: { 'content-type': 'application/json' } });
        expectErrorBody(res, 400, 'BAD_REQUEST');
      }
    });

    it('JSON that is not an object is a validation 400 with issues', async () => {
      for (const text of ['[]', 'null', '"text"', '42', 'true']) {
        const res = await http().post('/v1/tenants', text, { headers: { 'content-type': 'application/json' } });
        expectErrorBody(res, 400, 'BAD_REQUEST');
      }
    });

    it('unknown body fields are ignored', async () => {
      const slug = randomSlug();
      const res = await http().post('/v1/tenants', { slug, name: 'x', status: 'active', id: randomUUID(), extra: { a: 1 } });
      expect(res.status, res.text).toBe(201);
      expect(res.body.status).toBe('trial');
      expect(Object.keys(res.body).sort()).toEqual(['created_at', 'id', 'name', 'slug', 'status', 'updated_at']);
    });

    it('an empty POST body with no content type works where there is no input (activate, cancel)', async () => {
      const t = await newTenant(s);
      const activated = await http().post(`/v1/tenants/${t.id}/activate`);
      expect(activated.status, activated.text).toBe(200);
      expect(activated.body.status).toBe('active');
      const canceled = await http().post(`/v1/tenants/${t.id}/cancel`, '', { headers: { 'content-type': 'text/plain' } });
      expect(canceled.status, canceled.text).toBe(200);
      expect(canceled.body.status).toBe('frozen');
    });

    it('an empty POST body where input is required is a validation 400 (not 415)', async () => {
      expectIssueOn(await http().post('/v1/tenants'), ['slug']);
    });
  });

  describe('routes and methods', () => {
    it('an unknown path is 404 with the error body', async () => {
      for (const path of ['/v1/nope', '/nope', '/v2/tenants', '/v1/tenants/x/y/z', '/v1/']) {
        expectErrorBody(await http().get(path), 404, 'NOT_FOUND');
      }
      expectErrorBody(await http().post('/v1/nope', {}), 404, 'NOT_FOUND');
    });

    it('a known path with the wrong method is 404 or 405 with the error body', async () => {
      const id = randomUUID();
      const cases: [string, string][] = [
        ['PUT', '/v1/tenants'],
        ['GET', '/v1/tenants'],
        ['DELETE', '/v1/tenants'],
        ['PATCH', `/v1/tenants/${id}`],
        ['DELETE', `/v1/tenants/${id}`],
        ['POST', `/v1/tenants/${id}`],
        ['GET', `/v1/tenants/${id}/activate`],
        ['PUT', '/v1/audit'],
        ['DELETE', '/v1/audit'],
        ['PATCH', '/v1/audit'],
        ['GET', `/v1/api-keys/${id}`],
        ['PUT', '/v1/api-keys'],
        ['GET', '/v1/internal/api-keys/verify'],
        ['POST', '/v1/catalog'],
        ['GET', '/v1/catalog/request'],
        ['POST', '/v1/entitlements'],
        ['OPTIONS', '/v1/tenants'],
      ];
      for (const [method, path] of cases) {
        const res = await http().request(method, path, method === 'GET' || method === 'OPTIONS' ? {} : { body: {} });
        expect([404, 405], `${method} ${path}: ${res.status} ${res.text}`).toContain(res.status);
        expectErrorBody(res, undefined, res.status === 404 ? 'NOT_FOUND' : 'METHOD_NOT_SUPPORTED');
      }
    });

    it('HEAD is GET without a body: 200 on a GET route, 404 on an unknown path', async () => {
      for (const path of ['/v1/catalog', '/healthz']) {
        const res = await http().request('HEAD', path);
        expect(res.status, path).toBe(200);
        expect(res.text, path).toBe('');
        expect(res.headers.get('content-type'), path).toMatch(/^application\/json\b/);
      }
      expect((await http().request('HEAD', '/v1/nope')).status).toBe(404);
      expect((await http().request('HEAD', `/v1/tenants/${randomUUID()}`)).status).toBe(404);
    });

    it('/healthz is {status:"ok"} and /readyz {status:"ready"}, as JSON', async () => {
      const health = await http().get('/healthz');
      expect(health.status).toBe(200);
      expect(health.body).toEqual({ status: 'ok' });
      expect(health.headers.get('content-type')).toMatch(/^application\/json\b/);
      const ready = await http().get('/readyz');
      expect(ready.status).toBe(200);
      expect(ready.body).toEqual({ status: 'ready' });
      expect(ready.headers.get('content-type')).toMatch(/^application\/json\b/);
    });

    it('/readyz answers 503 {status:"unavailable"} when the store does not answer', async () => {
      const original = s.store.ping.bind(s.store);
      s.store.ping = () => Promise.reject(new Error('down'));
      try {
        const res = await http().get('/readyz');
        expect(res.status).toBe(503);
        expect(res.body).toEqual({ status: 'unavailable' });
        expect(res.headers.get('content-type')).toMatch(/^application\/json\b/);
      } finally {
        s.store.ping = original;
      }
    });

    it('every answer is application/json', async () => {
      const t = await newTenant(s);
      const responses = [
        await http().get(`/v1/tenants/${t.id}`),
        await http().get('/v1/catalog'),
        await http().get(`/v1/entitlements?tenant_id=${t.id}`),
        await http().get(`/v1/api-keys?tenant_id=${t.id}`),
        await http().get(`/v1/audit?tenant_id=${t.id}`),
        await http().post('/v1/internal/api-keys/verify', 'not json', { headers: { 'content-type': 'text/plain' } }),
        await http().post('/v1/audit', { action: 'conventions.checked', actor: { id: 'test' }, tenant_id: t.id }),
      ];
      for (const res of responses) {
        expect(res.status, res.text).toBeLessThan(300);
        expect(res.headers.get('content-type'), res.text).toMatch(/^application\/json\b/);
      }
    });
  });

  describe('query parameters', () => {
    const acme = '00000000-0000-0000-0000-000000000001';

    it('a duplicated single-valued key is 400 with an issue on it', async () => {
      expectIssueOn(await http().get(`/v1/entitlements?tenant_id=${acme}&tenant_id=${acme}`), ['tenant_id']);
      expectIssueOn(await http().get(`/v1/api-keys?tenant_id=${acme}&tenant_id=${acme}`), ['tenant_id']);
      expectIssueOn(await http().get(`/v1/api-keys?tenant_id=${acme}&include_revoked=true&include_revoked=true`), ['include_revoked']);
      expectIssueOn(await http().get(`/v1/api-keys?tenant_id=${acme}&include_revoked=true&include_revoked=false`), ['include_revoked']);
      for (const pair of ['action=a.b&action=a.b', 'limit=5&limit=5', 'product=analytics&product=automation', 'actor_id=a&actor_id=b', `tenant_id=${acme}&tenant_id=${acme}`, 'since=2026-01-01T00:00:00Z&since=2026-01-01T00:00:00Z']) {
        const key = pair.split('=')[0]!;
        expectIssueOn(await http().get(`/v1/audit?${pair}`), [key]);
      }
    });

    it('an empty value is 400, also with no "="', async () => {
      expectIssueOn(await http().get('/v1/entitlements?tenant_id='), ['tenant_id']);
      expectIssueOn(await http().get(`/v1/api-keys?tenant_id=${acme}&include_revoked=`), ['include_revoked']);
      expectIssueOn(await http().get(`/v1/api-keys?tenant_id=${acme}&include_revoked`), ['include_revoked']);
      for (const key of ['tenant_id', 'product', 'actor_id', 'action', 'since', 'until', 'limit', 'cursor']) {
        expectIssueOn(await http().get(`/v1/audit?${key}=`), [key]);
      }
    });

    it('a required query parameter that is missing is 400', async () => {
      expectIssueOn(await http().get('/v1/entitlements'), ['tenant_id']);
      expectIssueOn(await http().get('/v1/api-keys'), ['tenant_id']);
    });

    it('boolean values are exactly "true" or "false"', async () => {
      expect((await http().get(`/v1/api-keys?tenant_id=${acme}&include_revoked=true`)).status).toBe(200);
      expect((await http().get(`/v1/api-keys?tenant_id=${acme}&include_revoked=false`)).status).toBe(200);
      for (const value of ['TRUE', 'True', 'FALSE', '1', '0', 'yes', 'no', 'on', 't', 'f', ' true', 'true%20', 'null']) {
        expectIssueOn(await http().get(`/v1/api-keys?tenant_id=${acme}&include_revoked=${value}`), ['include_revoked']);
      }
    });

    it('number values must be integers in range (limit)', async () => {
      for (const value of ['abc', '1.5', '0', '501', '-1', '1e2x']) {
        expectIssueOn(await http().get(`/v1/audit?limit=${value}`), ['limit']);
      }
      expect((await http().get('/v1/audit?limit=500')).status).toBe(200);
    });

    it('filters that do not match their pattern are 400', async () => {
      expectIssueOn(await http().get('/v1/audit?action=Not%20An%20Action'), ['action']);
      expectIssueOn(await http().get('/v1/audit?product=NOPE'), ['product']);
      expectIssueOn(await http().get('/v1/audit?since=2026-01-01T00:00:00'), ['since']);
    });
  });
});

eachStore('HTTP conventions', (server) => {
  const http = () => server().http;

  describe('UUIDs', () => {
    it('an upper-case UUID in a path is accepted and returned lower-case', async () => {
      const t = await newTenant(server());
      const upper = t.id.toUpperCase();
      const got = await http().get(`/v1/tenants/${upper}`);
      expect(got.status, got.text).toBe(200);
      expect(got.body).toEqual(t);

      const activated = await http().post(`/v1/tenants/${upper}/activate`);
      expect(activated.status, activated.text).toBe(200);
      expect(activated.body.id).toBe(t.id);

      const key = await http().post('/v1/api-keys', { tenant_id: upper, name: 'case' });
      expect(key.status, key.text).toBe(201);
      expect(key.body.api_key.tenant_id).toBe(t.id);
      const revoked = await http().delete(`/v1/api-keys/${(key.body.api_key.id as string).toUpperCase()}`);
      expect(revoked.status, revoked.text).toBe(200);
      expect(revoked.body.id).toBe(key.body.api_key.id);
      expect(revoked.body.tenant_id).toBe(t.id);
    });

    it('an upper-case UUID in a query or body is accepted and returned lower-case', async () => {
      const t = await newTenant(server());
      const upper = t.id.toUpperCase();
      const trial = await http().post('/v1/catalog/trial-request', { tenant_id: upper, product: 'analytics' });
      expect(trial.status, trial.text).toBe(201);
      expect(trial.body.tenant_id).toBe(t.id);
      const ents = await http().get(`/v1/entitlements?tenant_id=${upper}`);
      expect(ents.status, ents.text).toBe(200);
      expect(ents.body.items.map((e: any) => e.tenant_id)).toEqual([t.id]);
      const audit = await http().get(`/v1/audit?tenant_id=${upper}`);
      expect(audit.status, audit.text).toBe(200);
      expect(audit.body.items.length).toBeGreaterThan(0);
      for (const e of audit.body.items) expect(e.tenant_id).toBe(t.id);
      const appended = await http().post('/v1/audit', { tenant_id: upper, action: 'case.checked', actor: { id: 'x' } });
      expect(appended.status, appended.text).toBe(201);
      expect(appended.body.tenant_id).toBe(t.id);
    });

    it('a non-canonical UUID is 400 in paths, queries and bodies', async () => {
      const id = randomUUID();
      const bad = [
        id.replaceAll('-', ''),
        `{${id}}`,
        id.slice(0, -1),
        `${id}0`,
        `urn:uuid:${id}`,
        id.replace(/-/g, '').replace(/^(.{8})(.{4})(.{4})(.{4})/, '$1-$2$3-$4-'),
        id.replace(/[0-9a-f]$/, 'g'),
        ` ${id}`,
      ];
      for (const b of bad) {
        const enc = encodeURIComponent(b);
        expectIssueOn(await http().get(`/v1/tenants/${enc}`), ['id']);
        expectIssueOn(await http().post(`/v1/tenants/${enc}/activate`), ['id']);
        expectIssueOn(await http().post(`/v1/tenants/${enc}/cancel`), ['id']);
        expectIssueOn(await http().delete(`/v1/api-keys/${enc}`), ['id']);
        expectIssueOn(await http().get(`/v1/entitlements?tenant_id=${enc}`), ['tenant_id']);
        expectIssueOn(await http().get(`/v1/api-keys?tenant_id=${enc}`), ['tenant_id']);
        expectIssueOn(await http().get(`/v1/audit?tenant_id=${enc}`), ['tenant_id']);
        expectIssueOn(await http().post('/v1/catalog/request', { tenant_id: b, product: 'analytics' }), ['tenant_id']);
        expectIssueOn(await http().post('/v1/catalog/trial-request', { tenant_id: b, product: 'analytics' }), ['tenant_id']);
        expectIssueOn(await http().post('/v1/api-keys', { tenant_id: b, name: 'k' }), ['tenant_id']);
        expectIssueOn(await http().post('/v1/audit', { tenant_id: b, action: 'a.b', actor: { id: 'x' } }), ['tenant_id']);
      }
    });

    it('a well-formed UUID that names nothing is 404 with the error body', async () => {
      const id = randomUUID();
      expectErrorBody(await http().get(`/v1/tenants/${id}`), 404, 'NOT_FOUND');
      expectErrorBody(await http().post(`/v1/tenants/${id}/activate`), 404, 'NOT_FOUND');
      expectErrorBody(await http().delete(`/v1/api-keys/${id}`), 404, 'NOT_FOUND');
      expectErrorBody(await http().get(`/v1/entitlements?tenant_id=${id}`), 404, 'NOT_FOUND');
      expectErrorBody(await http().post('/v1/audit', { tenant_id: id, action: 'a.b', actor: { id: 'x' } }), 404, 'NOT_FOUND');
    });
  });

  describe('error bodies', () => {
    it('validation, not-found and conflict errors have exactly {code, message[, issues]}', async () => {
      const t = await newTenant(server());
      expectErrorBody(await http().post('/v1/tenants', { slug: 'NO', name: '' }), 400, 'BAD_REQUEST');
      expectErrorBody(await http().post('/v1/tenants', { slug: t.slug, name: 'dup' }), 409, 'CONFLICT');
      expectErrorBody(await http().post(`/v1/tenants/${t.id}/cancel`), 409, 'CONFLICT');
      expectErrorBody(await http().get(`/v1/tenants/by-slug/${randomSlug('none')}`), 404, 'NOT_FOUND');
      expectErrorBody(await http().post('/v1/catalog/trial-request', { tenant_id: t.id, product: 'enterprise-sso' }), 409, 'CONFLICT');
      expectErrorBody(await http().post('/v1/catalog/request', { tenant_id: t.id, product: 'internal-tools' }), 404, 'NOT_FOUND');
      expectErrorBody(await http().get('/v1/audit?cursor=bm9wZQ'), 400, 'BAD_REQUEST');
      expectErrorBody(
        await http().post('/v1/api-keys', { tenant_id: t.id, name: 'k', expires_at: '2000-01-01T00:00:00Z' }),
        400,
        'BAD_REQUEST',
      );
      expectErrorBody(await http().post('/v1/audit', { action: 'a.b', actor: { id: 'x' }, fields: { k: 1 } }), 400, 'BAD_REQUEST');
    });

    it('a validation 400 lists issues with paths into the body', async () => {
      const res = await http().post('/v1/audit', { action: 'A', actor: { id: '' }, crud: 'x', is_failure: 'yes' });
      const body = expectErrorBody(res, 400, 'BAD_REQUEST');
      expect(body.issues!.map((i) => i.path)).toEqual(expect.arrayContaining([['action'], ['actor', 'id'], ['crud'], ['is_failure']]));
    });
  });
});
