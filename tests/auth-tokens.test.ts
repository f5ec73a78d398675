/**
 * Bearer-token authentication against a real OIDC issuer stand-in (memory store): the 401
 * challenge, public health endpoints, token attacks, key rotation and rate-limited JWKS
 * refetches, an issuer that is down, 401's precedence, the caller in audit events, tenant
 * isolation of audit queries, and where roles and tenants are read from in the token.
 */
import { createHmac, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OidcIssuer, b64url, decodePayload, makeSigningKey, nowSeconds } from './harness/oidc-issuer.js';
import { startServer, type TestServer } from './harness/server.js';
import { randomSlug } from './harness/each-store.js';

interface Answer {
  status: number;
  headers: Headers;
  body: any;
  text: string;
  /** Wall time of the request, ms. */
  ms: number;
}

/** One request, never longer than `timeoutMs` (an abort fails the test instead of hanging it). */
async function send(
  base: string,
  method: string,
  path: string,
  opts: { token?: string; headers?: Record<string, string>; body?: unknown; timeoutMs?: number } = {},
): Promise<Answer> {
  const headers: Record<string, string> = { ...opts.headers };
  if (opts.token !== undefined) headers.authorization = `Bearer ${opts.token}`;
  let body: Uint8Array<ArrayBuffer> | undefined;
  if (opts.body !== undefined) {
    const raw = typeof opts.body === 'string' ? opts.body : JSON.stringify(opts.body);
    if (typeof opts.body !== 'string' && !Object.keys(headers).some((h) => h.toLowerCase() === 'content-type')) {
      headers['content-type'] = 'application/json';
    }
    body = new Uint8Array(Buffer.from(raw));
  }
  const started = Date.now();
  const res = await fetch(base + path, { method, headers, body, signal: AbortSignal.timeout(opts.timeoutMs ?? 10_000) });
  const text = await res.text();
  let parsed: unknown;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    parsed = undefined;
  }
  return { status: res.status, headers: res.headers, body: parsed, text, ms: Date.now() - started };
}

const where = (res: Answer) => `${res.status} ${res.text.slice(0, 300)}`;

/** A REST 401: the error body and a Bearer challenge. */
function expect401(res: Answer) {
  expect(res.status, where(res)).toBe(401);
  expect(res.body, where(res)).toEqual({ code: 'UNAUTHORIZED', message: expect.any(String) });
  expect(res.headers.get('www-authenticate'), where(res)).toMatch(/^Bearer\b/);
}

/** A tRPC 401: tRPC's error envelope with code UNAUTHORIZED, and a Bearer challenge. */
function expectTrpc401(res: Answer) {
  expect(res.status, where(res)).toBe(401);
  expect(res.body?.error?.data?.code, where(res)).toBe('UNAUTHORIZED');
  expect(res.body.error.data.httpStatus, where(res)).toBe(401);
  expect(res.text, where(res)).not.toMatch(/"stack"/);
  expect(res.headers.get('www-authenticate'), where(res)).toMatch(/^Bearer\b/);
}

/** While the issuer cannot be asked: 401 or 503 with the JSON error body — never 500, never a hang. */
function expectIssuerTrouble(res: Answer, maxMs = 8_000) {
  expect([401, 503], where(res)).toContain(res.status);
  expect(res.headers.get('content-type'), where(res)).toMatch(/^application\/json\b/);
  expect(res.body?.code, where(res)).toBe(res.status === 401 ? 'UNAUTHORIZED' : 'SERVICE_UNAVAILABLE');
  expect(res.body.message, where(res)).toBeTypeOf('string');
  expect(res.ms, where(res)).toBeLessThan(maxMs);
}

const trpcQuery = (proc: string, input: unknown) => `/trpc/${proc}?input=${encodeURIComponent(JSON.stringify(input))}`;

describe('authentication with bearer tokens [memory store]', () => {
  let issuer: OidcIssuer;
  let s: TestServer;
  let admin: string;
  const get = (path: string, token?: string) => send(s.url, 'GET', path, { token });
  const post = (path: string, body: unknown, token?: string, headers?: Record<string, string>) =>
    send(s.url, 'POST', path, { token, body, headers });

  /** A fresh tenant, made by the platform admin. */
  const tenant = async () => {
    const res = await post('/v1/tenants', { slug: randomSlug('auth'), name: 'Auth test' }, admin);
    expect(res.status, where(res)).toBe(201);
    return res.body as { id: string; slug: string };
  };

  beforeAll(async () => {
    issuer = await OidcIssuer.start();
    s = await startServer('memory', { auth: issuer.authenticator() });
    admin = await issuer.tokenFor('platform-admin');
  });
  afterAll(async () => {
    await s?.close();
    await issuer?.close();
  });

  describe('the challenge', () => {
    it('no Authorization header is 401 with WWW-Authenticate: Bearer, over REST', async () => {
      for (const [method, path] of [
        ['GET', '/v1/catalog'],
        ['GET', `/v1/tenants/${randomUUID()}`],
        ['POST', '/v1/tenants'],
        ['GET', '/v1/audit'],
        ['POST', '/v1/internal/api-keys/verify'],
        ['DELETE', `/v1/api-keys/${randomUUID()}`],
      ] as const) {
        const res = await send(s.url, method, path, method === 'POST' ? { body: {} } : {});
        expect401(res);
        expect(res.headers.get('www-authenticate')).toBe('Bearer');
      }
    });

    it('no Authorization header is 401 with WWW-Authenticate: Bearer, over tRPC', async () => {
      expectTrpc401(await get(trpcQuery('catalog.list', {})));
      expectTrpc401(await get(trpcQuery('tenants.get', { id: randomUUID() })));
      expectTrpc401(await post('/trpc/tenants.create', { slug: randomSlug(), name: 'x' }));
      expectTrpc401(await post('/trpc/apiKeys.verify', { key: 'bp_xxxxxxxxxxxxxxxxxxxxxx' }));
      // A batch call: every call in it is refused.
      const batch = await get(`/trpc/catalog.list,tenants.get?batch=1&input=${encodeURIComponent(JSON.stringify({ 0: {}, 1: { id: randomUUID() } }))}`);
      expect(batch.status, where(batch)).toBe(401);
      expect(batch.body.map((r: any) => r.error.data.code)).toEqual(['UNAUTHORIZED', 'UNAUTHORIZED']);
      expect(batch.headers.get('www-authenticate')).toMatch(/^Bearer\b/);
    });

    it('an Authorization header that is not "Bearer <token>" is 401', async () => {
      for (const value of ['Basic dXNlcjpwYXNz', 'Bearer', 'Bearer ', 'Bearer a b', 'Token abc', `bearer${admin}`, 'Bearer not-a-jwt', 'Bearer a.b.c']) {
        const res = await send(s.url, 'GET', '/v1/catalog', { headers: { authorization: value } });
        expect401(res);
      }
      // The scheme is case-insensitive.
      const lower = await send(s.url, 'GET', '/v1/catalog', { headers: { authorization: `bearer ${admin}` } });
      expect(lower.status, where(lower)).toBe(200);
    });

    it('/healthz and /readyz need no token (and ignore a bad one)', async () => {
      for (const path of ['/healthz', '/readyz']) {
        const bare = await get(path);
        expect(bare.status, where(bare)).toBe(200);
        const bad = await get(path, 'garbage');
        expect(bad.status, where(bad)).toBe(200);
      }
      expect((await get('/healthz')).body).toEqual({ status: 'ok' });
      expect((await get('/readyz')).body).toEqual({ status: 'ready' });
    });

    it('a valid token gets in, over REST and tRPC; RS256 and ES256 both verify', async () => {
      expect((await get('/v1/catalog', admin)).status).toBe(200);
      const trpc = await get(trpcQuery('catalog.list', {}), admin);
      expect(trpc.status, where(trpc)).toBe(200);
      expect(trpc.body.result.data.items.length).toBeGreaterThan(0);
      const es = await issuer.token({ roles: ['platform-admin'], alg: 'ES256' });
      expect((await get('/v1/catalog', es)).status).toBe(200);
    });
  });

  describe('token attacks', () => {
    const catalog = (token: string) => get('/v1/catalog', token);

    it('expired beyond the 60 s leeway is 401; expired within it is accepted', async () => {
      const now = nowSeconds();
      expect401(await catalog(await issuer.token({ roles: ['platform-admin'], exp: now - 90, iat: now - 400 })));
      expect401(await catalog(await issuer.token({ roles: ['platform-admin'], exp: now - 3600, iat: now - 7200 })));
      const lenient = await catalog(await issuer.token({ roles: ['platform-admin'], exp: now - 30, iat: now - 400 }));
      expect(lenient.status, where(lenient)).toBe(200);
    });

    it('a token without exp or without sub is 401', async () => {
      expect401(await catalog(await issuer.token({ roles: ['platform-admin'], exp: null })));
      expect401(await catalog(await issuer.token({ roles: ['platform-admin'], claims: { sub: undefined } })));
    });

    it('not yet valid (nbf) beyond the leeway is 401; within it is accepted', async () => {
      const now = nowSeconds();
      expect401(await catalog(await issuer.token({ roles: ['platform-admin'], nbf: now + 120 })));
      const soon = await catalog(await issuer.token({ roles: ['platform-admin'], nbf: now + 30 }));
      expect(soon.status, where(soon)).toBe(200);
    });

    it('a wrong issuer is 401, whether the iss claim lies or a different issuer signed it', async () => {
      expect401(await catalog(await issuer.token({ roles: ['platform-admin'], iss: 'https://evil.example/realms/platform' })));
      expect401(await catalog(await issuer.token({ roles: ['platform-admin'], iss: `${issuer.url}/` })));
      const other = await OidcIssuer.start();
      try {
        // Its own iss; then our iss on its key (under its kid, and under our kid).
        expect401(await catalog(await other.tokenFor('platform-admin')));
        expect401(await catalog(await other.token({ roles: ['platform-admin'], iss: issuer.url })));
        expect401(await catalog(await other.token({ roles: ['platform-admin'], iss: issuer.url, kid: issuer.key().kid })));
      } finally {
        await other.close();
      }
    });

    it('a wrong audience is 401; azp = audience is accepted, as is aud among several', async () => {
      expect401(await catalog(await issuer.token({ roles: ['platform-admin'], aud: 'some-other-api' })));
      expect401(await catalog(await issuer.token({ roles: ['platform-admin'], aud: null })));
      expect401(await catalog(await issuer.token({ roles: ['platform-admin'], aud: 'account', azp: 'portal' })));
      const byAzp = await catalog(await issuer.token({ roles: ['platform-admin'], aud: 'account', azp: issuer.audience }));
      expect(byAzp.status, where(byAzp)).toBe(200);
      const byAzpNoAud = await catalog(await issuer.token({ roles: ['platform-admin'], aud: null, azp: issuer.audience }));
      expect(byAzpNoAud.status, where(byAzpNoAud)).toBe(200);
      const several = await catalog(await issuer.token({ roles: ['platform-admin'], aud: ['account', issuer.audience] }));
      expect(several.status, where(several)).toBe(200);
    });

    it('alg "none" is 401, however it is spelled', async () => {
      const payload = decodePayload(await issuer.tokenFor('platform-admin'));
      for (const alg of ['none', 'None', 'NONE']) {
        expect401(await catalog(`${b64url({ alg, typ: 'JWT' })}.${b64url(payload)}.`));
        expect401(await catalog(`${b64url({ alg, typ: 'JWT', kid: issuer.key().kid })}.${b64url(payload)}.`));
      }
    });

    it('HS256 signed with the RSA public key (key confusion) is 401', async () => {
      const payload = b64url(decodePayload(await issuer.tokenFor('platform-admin')));
      const key = issuer.key('RS256');
      const secrets = [key.publicPem, key.publicPem.trim(), JSON.stringify(key.publicJwk), String(key.publicJwk.n)];
      for (const alg of ['HS256', 'HS384', 'HS512'] as const) {
        for (const secret of secrets) {
          const header = b64url({ alg, typ: 'JWT', kid: key.kid });
          const mac = createHmac(alg.replace('HS', 'sha'), secret).update(`${header}.${payload}`).digest('base64url');
          expect401(await catalog(`${header}.${payload}.${mac}`));
        }
      }
    });

    it('a tampered payload (or header) is 401', async () => {
      const member = await issuer.tokenFor('tenant-member', [randomUUID()]);
      const [header, , signature] = member.split('.');
      const escalated = { ...decodePayload(member), realm_access: { roles: ['platform-admin'] } };
      expect401(await catalog(`${header}.${b64url(escalated)}.${signature}`));
      const extended = { ...decodePayload(member), exp: nowSeconds() + 86_400 * 365 };
      expect401(await catalog(`${header}.${b64url(extended)}.${signature}`));
      const [, body] = admin.split('.');
      expect401(await catalog(`${b64url({ alg: 'RS256', typ: 'JWT', kid: issuer.key().kid, x: 1 })}.${body}.${admin.split('.')[2]}`));
      // A flipped signature bit.
      const sig = Buffer.from(admin.split('.')[2]!, 'base64url');
      sig[0]! ^= 1;
      expect401(await catalog(`${admin.split('.').slice(0, 2).join('.')}.${sig.toString('base64url')}`));
    });

    it('an unpublished key under a published kid is 401', async () => {
      const rogue = await makeSigningKey('RS256', issuer.key().kid);
      expect401(await catalog(await issuer.token({ roles: ['platform-admin'], key: rogue })));
      const noKid = await catalog(await issuer.token({ roles: ['platform-admin'], key: rogue, kid: null }));
      expect401(noKid);
    });
  });

  describe('key rotation and JWKS refetches', () => {
    // Each test has its own server, so its verifier starts with an empty JWKS cache.
    let issuerR: OidcIssuer;
    let sr: TestServer;
    beforeAll(async () => {
      issuerR = await OidcIssuer.start();
      // The default cooldown (30 s): a rotation right after start-up must still be found.
      sr = await startServer('memory', { auth: issuerR.authenticator() });
    });
    afterAll(async () => {
      await sr?.close();
      await issuerR?.close();
    });

    it('a token under a newly published kid refetches the JWKS once and is accepted', async () => {
      const first = await send(sr.url, 'GET', '/v1/catalog', { token: await issuerR.tokenFor('platform-admin') });
      expect(first.status, where(first)).toBe(200);
      expect(issuerR.discoveryFetches).toBe(1);
      expect(issuerR.jwksFetches).toBe(1);
      // The cache serves known keys without fetching.
      for (let i = 0; i < 5; i++) await send(sr.url, 'GET', '/v1/catalog', { token: await issuerR.tokenFor('platform-admin') });
      expect(issuerR.jwksFetches).toBe(1);

      const fresh = await issuerR.rotate('RS256');
      const token = await issuerR.tokenFor('platform-admin');
      expect(JSON.parse(Buffer.from(token.split('.')[0]!, 'base64url').toString()).kid).toBe(fresh.kid);
      const rotated = await send(sr.url, 'GET', '/v1/catalog', { token });
      expect(rotated.status, where(rotated)).toBe(200);
      expect(issuerR.jwksFetches).toBe(2);
      // And the new key is cached now.
      await send(sr.url, 'GET', '/v1/catalog', { token: await issuerR.tokenFor('platform-admin') });
      expect(issuerR.jwksFetches).toBe(2);
      expect(issuerR.discoveryFetches).toBe(1);
    });

    it('an unknown kid hammered 20 times (sequentially and at once) causes at most one or two JWKS fetches', async () => {
      const ghost = await makeSigningKey('RS256');
      const before = issuerR.jwksFetches;
      for (let i = 0; i < 10; i++) {
        expect401(await send(sr.url, 'GET', '/v1/catalog', { token: await issuerR.token({ roles: ['platform-admin'], key: ghost }) }));
      }
      const burst = await Promise.all(
        Array.from({ length: 10 }, async () =>
          send(sr.url, 'GET', '/v1/catalog', { token: await issuerR.token({ roles: ['platform-admin'], key: ghost, kid: `ghost-${randomUUID()}` }) }),
        ),
      );
      for (const res of burst) expect401(res);
      expect(issuerR.jwksFetches - before).toBeLessThanOrEqual(2);
      // Known keys keep working meanwhile.
      expect((await send(sr.url, 'GET', '/v1/catalog', { token: await issuerR.tokenFor('platform-admin') })).status).toBe(200);
    });

    it('with a short cooldown, unknown kids refetch at most once per cooldown', async () => {
      const iss = await OidcIssuer.start();
      const srv = await startServer('memory', { auth: iss.authenticator({ jwksCooldownMs: 300 }) });
      try {
        expect((await send(srv.url, 'GET', '/v1/catalog', { token: await iss.tokenFor('platform-admin') })).status).toBe(200);
        const ghost = await makeSigningKey('RS256');
        const t0 = Date.now();
        for (let i = 0; i < 20; i++) {
          expect401(await send(srv.url, 'GET', '/v1/catalog', { token: await iss.token({ roles: ['platform-admin'], key: ghost }) }));
        }
        const windows = Math.ceil((Date.now() - t0) / 300) + 1;
        expect(iss.jwksFetches - 1).toBeLessThanOrEqual(windows);
        expect(iss.jwksFetches - 1).toBeLessThan(20);
        // After the cooldown, a rotation is picked up.
        await new Promise((r) => setTimeout(r, 350));
        await iss.rotate('ES256');
        const res = await send(srv.url, 'GET', '/v1/catalog', { token: await iss.token({ roles: ['platform-admin'], alg: 'ES256' }) });
        expect(res.status, where(res)).toBe(200);
      } finally {
        await srv.close();
        await iss.close();
      }
    });
  });

  describe('an issuer that is down', () => {
    /** A server whose verifier has not discovered the issuer yet. */
    async function coldServer(iss: OidcIssuer) {
      return startServer('memory', { auth: iss.authenticator() });
    }

    it('discovery hanging: 401/503 JSON within the fetch timeout, then recovery once it answers', async () => {
      const iss = await OidcIssuer.start();
      const srv = await coldServer(iss);
      try {
        const token = await iss.tokenFor('platform-admin');
        iss.goDown('hang', 'discovery');
        const res = await send(srv.url, 'GET', '/v1/catalog', { token, timeoutMs: 15_000 });
        expectIssuerTrouble(res);
        const trpc = await send(srv.url, 'GET', trpcQuery('catalog.list', {}), { token, timeoutMs: 15_000 });
        expect([401, 503], where(trpc)).toContain(trpc.status);
        expect(trpc.ms).toBeLessThan(8_000);
        iss.comeUp();
        // It recovers on its own (a failed discovery is retried after a short pause).
        const deadline = Date.now() + 15_000;
        let last: Answer;
        do {
          await new Promise((r) => setTimeout(r, 250));
          last = await send(srv.url, 'GET', '/v1/catalog', { token });
          if (last.status !== 200) expectIssuerTrouble(last);
        } while (last.status !== 200 && Date.now() < deadline);
        expect(last.status, where(last)).toBe(200);
      } finally {
        await srv.close();
        await iss.close();
      }
    }, 40_000);

    it('discovery answering 503 or resetting connections: 401/503 JSON, quickly', async () => {
      for (const mode of ['error', 'reset'] as const) {
        const iss = await OidcIssuer.start();
        const srv = await coldServer(iss);
        try {
          iss.goDown(mode, 'both');
          const token = await iss.tokenFor('platform-admin');
          for (let i = 0; i < 3; i++) expectIssuerTrouble(await send(srv.url, 'GET', '/v1/catalog', { token }), 4_000);
        } finally {
          await srv.close();
          await iss.close();
        }
      }
    });

    it('issuer closed (connection refused): 401/503 JSON, quickly; REST and tRPC', async () => {
      const iss = await OidcIssuer.start();
      const srv = await coldServer(iss);
      try {
        const token = await iss.tokenFor('platform-admin');
        await iss.close();
        expectIssuerTrouble(await send(srv.url, 'GET', '/v1/catalog', { token }), 4_000);
        expectIssuerTrouble(await send(srv.url, 'POST', '/v1/tenants', { token, body: { slug: randomSlug(), name: 'x' } }), 4_000);
        const trpc = await send(srv.url, 'POST', '/trpc/tenants.create', { token, body: { slug: randomSlug(), name: 'x' } });
        expect([401, 503], where(trpc)).toContain(trpc.status);
        expect(trpc.body.error.data.httpStatus).toBe(trpc.status);
      } finally {
        await srv.close();
      }
    });

    it('JWKS down after discovery (hanging, 503, reset): 401/503 JSON, never 500, never a hang', async () => {
      for (const mode of ['hang', 'error', 'reset'] as const) {
        const iss = await OidcIssuer.start();
        const srv = await coldServer(iss);
        try {
          iss.goDown(mode, 'jwks');
          const token = await iss.tokenFor('platform-admin');
          expectIssuerTrouble(await send(srv.url, 'GET', '/v1/catalog', { token, timeoutMs: 15_000 }));
          iss.comeUp();
          const ok = await send(srv.url, 'GET', '/v1/catalog', { token });
          expect(ok.status, `${mode}: ${where(ok)}`).toBe(200);
        } finally {
          await srv.close();
          await iss.close();
        }
      }
    }, 40_000);

    it('with the keys cached, known kids keep working while the issuer is down; unknown kids fail cleanly', async () => {
      const iss = await OidcIssuer.start();
      const srv = await startServer('memory', { auth: iss.authenticator({ jwksCooldownMs: 0 }) });
      try {
        expect((await send(srv.url, 'GET', '/v1/catalog', { token: await iss.tokenFor('platform-admin') })).status).toBe(200);
        iss.goDown('hang');
        const cached = await send(srv.url, 'GET', '/v1/catalog', { token: await iss.tokenFor('platform-admin'), timeoutMs: 3_000 });
        expect(cached.status, where(cached)).toBe(200);
        const ghost = await makeSigningKey('ES256');
        expectIssuerTrouble(await send(srv.url, 'GET', '/v1/catalog', { token: await iss.token({ roles: ['platform-admin'], key: ghost }), timeoutMs: 15_000 }));
      } finally {
        await srv.close();
        await iss.close();
      }
    }, 30_000);
  });

  describe('401 comes first', () => {
    const bad = 'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln';

    it('over REST, a bad or missing token beats 400, 413, 415 and 404', async () => {
      for (const token of [undefined, bad]) {
        expect401(await send(s.url, 'POST', '/v1/tenants', { token, body: '{not json', headers: { 'content-type': 'application/json' } }));
        expect401(await send(s.url, 'POST', '/v1/tenants', { token, body: { slug: 'X', name: '' } }));
        expect401(await send(s.url, 'POST', '/v1/tenants', { token, body: 'slug=x', headers: { 'content-type': 'text/plain' } }));
        expect401(await send(s.url, 'POST', '/v1/tenants', { token, body: 'x'.repeat(1_048_577), headers: { 'content-type': 'application/json' } }));
        expect401(await send(s.url, 'GET', '/v1/tenants/not-a-uuid', { token }));
        expect401(await send(s.url, 'GET', '/v1/audit?limit=0&since=yesterday', { token }));
        expect401(await send(s.url, 'GET', `/v1/tenants/${randomUUID()}`, { token }));
        expect401(await send(s.url, 'POST', '/v1/internal/api-keys/verify', { token, body: 'garbage', headers: { 'content-type': 'text/plain' } }));
      }
    });

    it('over tRPC, a bad or missing token beats malformed JSON, invalid input, an oversize body and unknown ids', async () => {
      for (const token of [undefined, bad]) {
        expectTrpc401(await send(s.url, 'POST', '/trpc/tenants.create', { token, body: '{not json', headers: { 'content-type': 'application/json' } }));
        expectTrpc401(await send(s.url, 'POST', '/trpc/tenants.create', { token, body: { slug: 'X' } }));
        expectTrpc401(await send(s.url, 'POST', '/trpc/tenants.create', { token, body: 'x'.repeat(1_048_577), headers: { 'content-type': 'application/json' } }));
        expectTrpc401(await send(s.url, 'GET', trpcQuery('tenants.get', { id: 'not-a-uuid' }), { token }));
        expectTrpc401(await send(s.url, 'GET', trpcQuery('tenants.get', { id: randomUUID() }), { token }));
        expectTrpc401(await send(s.url, 'POST', '/trpc/tenants.create', { token, body: 'slug=x', headers: { 'content-type': 'text/plain' } }));
      }
    });

    it('over tRPC, a refused batch answers one tRPC error per call', async () => {
      const res = await send(s.url, 'GET', '/trpc/catalog.list,tenants.get?batch=1&input={}', { token: bad });
      expect(res.status).toBe(401);
      expect(res.headers.get('www-authenticate')).toMatch(/^Bearer/);
      expect(res.body).toHaveLength(2);
      expect(res.body.map((e: any) => [e.error.data.code, e.error.data.path])).toEqual([
        ['UNAUTHORIZED', 'catalog.list'],
        ['UNAUTHORIZED', 'tenants.get'],
      ]);
    });
  });

  describe('the caller in audit events', () => {
    it('a user: actor = sub, preferred_username, type user; source_ip the socket address', async () => {
      const t = await tenant();
      const sub = randomUUID();
      const token = await issuer.token({ sub, roles: ['tenant-admin'], tenantIds: [t.id], preferredUsername: 'alice', azp: 'portal' });
      const res = await post('/v1/catalog/request', { tenant_id: t.id, product: 'analytics' }, token, { 'x-forwarded-for': '203.0.113.7' });
      expect(res.status, where(res)).toBe(201);
      const events = (await get(`/v1/audit?tenant_id=${t.id}&action=catalog.requested`, admin)).body.items;
      expect(events).toHaveLength(1);
      expect(events[0].actor).toEqual({ id: sub, name: 'alice', type: 'user' });
      // Without TRUST_PROXY, X-Forwarded-For is ignored.
      expect(events[0].source_ip).toBe('127.0.0.1');
    });

    it('a platform-admin user: tenant.created carries the user', async () => {
      const sub = randomUUID();
      const token = await issuer.token({ sub, roles: ['platform-admin'], preferredUsername: 'root-rita' });
      const res = await post('/v1/tenants', { slug: randomSlug(), name: 'By Rita' }, token);
      expect(res.status, where(res)).toBe(201);
      const [event] = (await get(`/v1/audit?tenant_id=${res.body.id}&action=tenant.created`, admin)).body.items;
      expect(event.actor).toEqual({ id: sub, name: 'root-rita', type: 'user' });
    });

    it('a service account: actor = sub, the client id, type service (REST and tRPC)', async () => {
      const sub = randomUUID();
      const token = await issuer.token({
        sub,
        roles: ['platform-admin'],
        azp: 'provisioner',
        preferredUsername: 'service-account-provisioner',
        claims: { client_id: 'provisioner' },
      });
      const rest = await post('/v1/tenants', { slug: randomSlug(), name: 'By a robot' }, token);
      expect(rest.status, where(rest)).toBe(201);
      const trpc = await post('/trpc/tenants.create', { slug: randomSlug(), name: 'By a robot' }, token);
      expect(trpc.status, where(trpc)).toBe(200);
      for (const id of [rest.body.id, trpc.body.result.data.id]) {
        const [event] = (await get(`/v1/audit?tenant_id=${id}&action=tenant.created`, admin)).body.items;
        expect(event.actor).toEqual({ id: sub, name: 'provisioner', type: 'service' });
      }
    });

    it('a service appending an event: the body names the actor; source_ip defaults to the caller', async () => {
      const t = await tenant();
      const res = await post(
        '/v1/audit',
        { tenant_id: t.id, action: 'invoice.sent', actor: { id: 'billing-job' } },
        await issuer.tokenFor('service'),
      );
      expect(res.status, where(res)).toBe(201);
      expect(res.body.actor).toEqual({ id: 'billing-job', name: null, type: 'service' });
      expect(res.body.source_ip).toBe('127.0.0.1');
    });

    it('source_ip comes from X-Forwarded-For only with trustProxy', async () => {
      const proxied = await startServer('memory', { auth: issuer.authenticator(), trustProxy: true });
      try {
        const res = await send(proxied.url, 'POST', '/v1/tenants', {
          token: admin,
          body: { slug: randomSlug(), name: 'Behind a proxy' },
          headers: { 'x-forwarded-for': '203.0.113.7, 10.0.0.1' },
        });
        expect(res.status, where(res)).toBe(201);
        const events = await send(proxied.url, 'GET', `/v1/audit?tenant_id=${res.body.id}`, { token: admin });
        expect(events.body.items.map((e: any) => e.source_ip)).toEqual(['203.0.113.7']);
        const appended = await send(proxied.url, 'POST', '/v1/audit', {
          token: await issuer.tokenFor('service'),
          body: { action: 'x.y', actor: { id: 'a' } },
          headers: { 'x-forwarded-for': '2001:db8::1' },
        });
        expect(appended.body.source_ip).toBe('2001:db8::1');
      } finally {
        await proxied.close();
      }
      const direct = await post('/v1/tenants', { slug: randomSlug(), name: 'Direct' }, admin, { 'x-forwarded-for': '203.0.113.7' });
      const events = await get(`/v1/audit?tenant_id=${direct.body.id}`, admin);
      expect(events.body.items.map((e: any) => e.source_ip)).toEqual(['127.0.0.1']);
    });
  });

  describe('tenant isolation of audit queries', () => {
    let a: { id: string };
    let b: { id: string };
    let adminA: string;
    const seen = (items: any[]) => new Set(items.map((e) => e.tenant_id));

    beforeAll(async () => {
      a = await tenant();
      b = await tenant();
      const service = await issuer.tokenFor('service');
      for (const t of [a, b]) {
        for (let i = 0; i < 3; i++) {
          const res = await post('/v1/audit', { tenant_id: t.id, action: 'shared.action', actor: { id: 'shared-actor' }, product: 'analytics' }, service);
          expect(res.status, where(res)).toBe(201);
        }
      }
      // An event with no tenant at all.
      await post('/v1/audit', { action: 'shared.action', actor: { id: 'shared-actor' } }, service);
      adminA = await issuer.tokenFor('tenant-admin', [a.id]);
    });

    it("tenant_id = another tenant is 404, exactly like a tenant that does not exist", async () => {
      const other = await get(`/v1/audit?tenant_id=${b.id}`, adminA);
      const upper = await get(`/v1/audit?tenant_id=${b.id.toUpperCase()}`, adminA);
      const missing = await get(`/v1/audit?tenant_id=${randomUUID()}`, adminA);
      for (const res of [other, upper, missing]) expect(res.status, where(res)).toBe(404);
      expect(other.body).toEqual(missing.body);
      const trpc = await get(trpcQuery('audit.query', { tenant_id: b.id }), adminA);
      expect(trpc.status, where(trpc)).toBe(404);
      expect(trpc.body.error.data.code).toBe('NOT_FOUND');
    });

    it('no tenant_id is forced to their own tenant; actor_id, action, product and cursors do not leak', async () => {
      const queries = ['', '?actor_id=shared-actor', '?action=shared.action', '?product=analytics', '?limit=500', `?tenant_id=${a.id}&action=shared.action`];
      for (const q of queries) {
        const res = await get(`/v1/audit${q}`, adminA);
        expect(res.status, `${q}: ${where(res)}`).toBe(200);
        expect(res.body.items.length, q).toBeGreaterThan(0);
        expect(seen(res.body.items), q).toEqual(new Set([a.id]));
      }
      // Paging one by one with no tenant_id never leaves tenant A.
      let cursor: string | null = null;
      const ids: string[] = [];
      do {
        const res: Answer = await get(`/v1/audit?limit=1${cursor ? `&cursor=${cursor}` : ''}`, adminA);
        expect(res.status, where(res)).toBe(200);
        ids.push(...res.body.items.map((e: any) => e.tenant_id));
        cursor = res.body.next_cursor;
      } while (cursor);
      expect(new Set(ids)).toEqual(new Set([a.id]));
      expect(ids.length).toBe(4); // tenant.created + 3 appended
      // The same over tRPC.
      const trpc = await get(trpcQuery('audit.query', { actor_id: 'shared-actor' }), adminA);
      expect(trpc.status, where(trpc)).toBe(200);
      expect(seen(trpc.body.result.data.items)).toEqual(new Set([a.id]));
      // A platform admin sees both (and the event without a tenant).
      const all = await get('/v1/audit?actor_id=shared-actor&limit=500', admin);
      expect(seen(all.body.items)).toEqual(new Set([a.id, b.id, null]));
    });

    it('a cursor from tenant A cannot be replayed against tenant B', async () => {
      const first = await get('/v1/audit?limit=1', adminA);
      const cursor = first.body.next_cursor as string;
      expect(cursor).toBeTypeOf('string');
      const res = await get(`/v1/audit?limit=1&cursor=${cursor}&tenant_id=${b.id}`, adminA);
      expect([400, 404], where(res)).toContain(res.status);
    });

    it('a tenant-admin of several tenants must name one (400), and sees only the named one', async () => {
      const both = await issuer.tokenFor('tenant-admin', [a.id, randomUUID()]);
      const res = await get('/v1/audit', both);
      expect(res.status, where(res)).toBe(400);
      expect(res.body.code).toBe('BAD_REQUEST');
      const named = await get(`/v1/audit?tenant_id=${a.id}`, both);
      expect(named.status, where(named)).toBe(200);
      expect(seen(named.body.items)).toEqual(new Set([a.id]));
      expect((await get(`/v1/audit?tenant_id=${b.id}`, both)).status).toBe(404);
    });

    it('a tenant-admin with no tenants sees nothing', async () => {
      const none = await issuer.tokenFor('tenant-admin', []);
      const res = await get('/v1/audit', none);
      expect([400, 403, 404], where(res)).toContain(res.status);
      expect((await get(`/v1/audit?tenant_id=${a.id}`, none)).status).toBe(404);
    });
  });

  describe('where roles and tenants come from', () => {
    it('a single tenant_id string is accepted (and tenant_ids with junk is filtered)', async () => {
      const a = await tenant();
      const b = await tenant();
      const single = await issuer.token({ roles: ['tenant-member'], tenantId: a.id });
      expect((await get(`/v1/tenants/${a.id}`, single)).status).toBe(200);
      expect((await get(`/v1/tenants/${b.id}`, single)).status).toBe(404);
      const upper = await issuer.token({ roles: ['tenant-member'], tenantId: a.id.toUpperCase() });
      expect((await get(`/v1/tenants/${a.id}`, upper)).status).toBe(200);
      const junk = await issuer.token({ roles: ['tenant-member'], tenantIds: ['not-a-uuid', a.id], claims: { tenant_ids: ['not-a-uuid', 42, a.id] } });
      expect((await get(`/v1/tenants/${a.id}`, junk)).status).toBe(200);
      expect((await get(`/v1/tenants/${b.id}`, junk)).status).toBe(404);
    });

    it('client roles of our audience count; those of another client do not', async () => {
      const viaClient = await issuer.token({ clientRoles: ['platform-admin'] });
      const created = await post('/v1/tenants', { slug: randomSlug(), name: 'Client role' }, viaClient);
      expect(created.status, where(created)).toBe(201);

      const otherClient = await issuer.token({ resourceAccess: { 'other-app': ['platform-admin'], account: ['manage-account'] } });
      const refused = await post('/v1/tenants', { slug: randomSlug(), name: 'Nope' }, otherClient);
      expect(refused.status, where(refused)).toBe(403);
      expect(refused.body).toEqual({ code: 'FORBIDDEN', message: expect.any(String) });
      // A valid token with no role at all reads nothing.
      expect((await get('/v1/catalog', otherClient)).status).toBe(403);
      expect((await get(`/v1/tenants/${created.body.id}`, otherClient)).status).toBe(404);

      // Unknown role names are ignored; tenant roles from the client work with tenant_ids.
      const t = await tenant();
      const clientTenantAdmin = await issuer.token({ roles: ['offline_access', 'uma_authorization'], clientRoles: ['tenant-admin'], tenantIds: [t.id] });
      const req = await post('/v1/catalog/trial-request', { tenant_id: t.id, product: 'compliance' }, clientTenantAdmin);
      expect(req.status, where(req)).toBe(201);
    });

    it('a tenant role without the tenant claim grants nothing tenant-specific', async () => {
      const t = await tenant();
      const bare = await issuer.token({ roles: ['tenant-admin'] });
      expect((await get(`/v1/tenants/${t.id}`, bare)).status).toBe(404);
      expect((await get(`/v1/entitlements?tenant_id=${t.id}`, bare)).status).toBe(404);
      expect((await get('/v1/catalog', bare)).status).toBe(200);
    });
  });
});
