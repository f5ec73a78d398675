/**
 * Logs: one JSON line per request on both lanes (express and the verify lane), with its
 * method, route template, status, duration, request id, tenant id and actor; X-Request-Id
 * taken or made up, and echoed; and no secret in any line: bearer tokens, cookies, API key
 * plaintexts. The app runs in-process with a logger whose output the test captures; the
 * real entry point is checked for its JSON and pretty formats.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRequestHandler } from '../src/app.js';
import type { Authenticator } from '../src/auth/authenticate.js';
import { loadConfig } from '../src/config.js';
import { MemoryStore } from '../src/db/memory-store.js';
import { Argon2Pool } from '../src/keys/argon2-pool.js';
import { BatchedKeyUsage } from '../src/keys/key-usage.js';
import { VerifyCache } from '../src/keys/verify-cache.js';
import { createLogger, type LogLevel } from '../src/log.js';
import { Http } from './harness/http.js';
import { OidcIssuer } from './harness/oidc-issuer.js';
import { killAll, spawnServer, untilUp } from './harness/server-process.js';

const VERIFY = '/v1/internal/api-keys/verify';
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface LoggedApp {
  http: Http;
  lines: string[];
  /** The parsed lines (every line must be JSON). */
  entries(): Record<string, any>[];
  close(): Promise<void>;
}

/** The real request handler over the memory store, logging at `level` into `lines`. */
async function startLoggedApp(level: LogLevel, auth: Authenticator): Promise<LoggedApp> {
  const lines: string[] = [];
  const store = new MemoryStore();
  const hasher = new Argon2Pool({ threads: 2 });
  const usage = new BatchedKeyUsage(store, 60_000);
  const deps = { store, hasher, usage, verifyCache: new VerifyCache(store.changes) };
  const log = createLogger(level, (line) => lines.push(line));
  const handler = createRequestHandler({ deps, log, trustProxy: false, auth });
  const server: Server = await new Promise((resolve) => {
    const s = createServer(handler).listen(0, '127.0.0.1', () => resolve(s));
  });
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    http: new Http(url),
    lines,
    entries: () => lines.map((line) => JSON.parse(line) as Record<string, any>),
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await usage.close();
      await hasher.close();
    },
  };
}

/** The request line of `reqId` (written when the response is done, so maybe a moment after the client has it). */
async function requestLine(app: LoggedApp, reqId: string): Promise<Record<string, any>> {
  for (let i = 0; i < 100; i++) {
    const found = app.entries().filter((e) => e.msg === 'request' && e.req_id === reqId);
    if (found.length > 1) throw new Error(`${found.length} request lines for ${reqId}`);
    if (found[0]) return found[0];
    await sleep(20);
  }
  throw new Error(`no request line for ${reqId}; lines:\n${app.lines.join('')}`);
}

describe('request logging [in-process, authentication on]', () => {
  let issuer: OidcIssuer;
  let app: LoggedApp;
  let admin: string;
  let service: string;
  let serviceSub: string;
  const adminSub = randomUUID();

  beforeAll(async () => {
    issuer = await OidcIssuer.start();
    app = await startLoggedApp('info', issuer.authenticator());
    admin = await issuer.tokenFor('platform-admin', [], { sub: adminSub });
    serviceSub = randomUUID();
    service = await issuer.tokenFor('service', [], { sub: serviceSub });
  });
  afterAll(async () => {
    await app?.close();
    await issuer?.close();
  });

  const as = (token: string, reqId: string, extra: Record<string, string> = {}) => ({
    headers: { authorization: `Bearer ${token}`, 'x-request-id': reqId, ...extra },
  });

  it('writes one line per request, on both lanes, with route template, status, duration, ids, tenant and actor', async () => {
    const run = randomBytes(4).toString('hex');
    const id = (n: string) => `${run}-${n}`;
    const tenant = (await app.http.post('/v1/tenants', { slug: `log-${run}`, name: 'Logged' }, as(admin, id('create')))).body;
    expect(tenant.id).toMatch(UUID);
    expect((await app.http.post('/v1/catalog/trial-request', { tenant_id: tenant.id, product: 'analytics' }, as(admin, id('trial')))).status).toBe(201);
    const key = (await app.http.post('/v1/api-keys', { tenant_id: tenant.id, name: 'gw', product: 'analytics' }, as(admin, id('key')))).body;
    expect(key.plaintext).toBeTypeOf('string');
    expect((await app.http.post(VERIFY, { key: key.plaintext }, as(service, id('verify')))).body).toMatchObject({ valid: true });
    expect((await app.http.post(VERIFY, { key: 'bp_nonsense' }, as(service, id('verify-bad')))).body).toMatchObject({ valid: false });
    expect((await app.http.get(`/v1/tenants/${tenant.id}`, as(admin, id('get')))).status).toBe(200);
    expect((await app.http.get(`/v1/tenants/${randomUUID()}`, as(admin, id('get-404')))).status).toBe(404);
    const input = encodeURIComponent(JSON.stringify({ tenant_id: tenant.id }));
    expect((await app.http.get(`/trpc/entitlements.list?input=${input}`, as(admin, id('trpc')))).status).toBe(200);
    expect((await app.http.get('/healthz', { headers: { 'x-request-id': id('health') } })).status).toBe(200);
    expect((await app.http.get('/v1/tenants', { headers: { 'x-request-id': id('anonymous') } })).status).toBe(401);
    expect((await app.http.post(VERIFY, { key: key.plaintext }, { headers: { 'x-request-id': id('verify-401') } })).status).toBe(401);
    expect((await app.http.get(`/no/such/${tenant.id}`, { headers: { 'x-request-id': id('unmatched') } })).status).toBe(404);

    const line = (n: string) => requestLine(app, id(n));
    for (const n of ['create', 'trial', 'key', 'verify', 'verify-bad', 'get', 'get-404', 'trpc', 'health', 'anonymous', 'verify-401', 'unmatched']) {
      const entry = await line(n);
      expect(entry).toMatchObject({ level: 'info', msg: 'request', req_id: id(n) });
      expect(entry.time).toMatch(/^\d{4}-\d{2}-\d{2}T/);
      expect(entry.duration_ms).toBeTypeOf('number');
      expect(entry.duration_ms).toBeGreaterThanOrEqual(0);
    }
    expect(await line('create')).toMatchObject({ method: 'POST', route: '/v1/tenants', status: 201, actor: adminSub, actor_type: 'user' });
    expect(await line('trial')).toMatchObject({ route: '/v1/catalog/trial-request', status: 201, tenant_id: tenant.id, actor: adminSub });
    expect(await line('key')).toMatchObject({ route: '/v1/api-keys', status: 201, tenant_id: tenant.id });
    // The verify lane: its path is its template; the tenant is the verified key's.
    expect(await line('verify')).toMatchObject({ method: 'POST', route: VERIFY, status: 200, tenant_id: tenant.id, actor: serviceSub, actor_type: 'service' });
    expect((await line('verify-bad')).tenant_id).toBeUndefined();
    expect(await line('verify-401')).toMatchObject({ route: VERIFY, status: 401 });
    expect((await line('verify-401')).actor).toBeUndefined();
    // Templates, never ids.
    expect(await line('get')).toMatchObject({ method: 'GET', route: '/v1/tenants/{id}', status: 200, tenant_id: tenant.id });
    expect(await line('get-404')).toMatchObject({ route: '/v1/tenants/{id}', status: 404 });
    expect(await line('trpc')).toMatchObject({ route: '/trpc/entitlements.list', status: 200, tenant_id: tenant.id });
    expect(await line('health')).toMatchObject({ route: '/healthz', status: 200 });
    expect(await line('anonymous')).toMatchObject({ route: '/v1/tenants', status: 401 });
    expect(await line('unmatched')).toMatchObject({ route: 'unmatched', path: `/no/such/${tenant.id}`, status: 404 });
  });

  it('echoes X-Request-Id, and makes one up when there is none or it is unfit', async () => {
    const given = `given-${randomBytes(6).toString('hex')}`;
    const echoed = await app.http.get('/healthz', { headers: { 'x-request-id': given } });
    expect(echoed.headers.get('x-request-id')).toBe(given);
    expect((await requestLine(app, given)).route).toBe('/healthz');

    const none = await app.http.get('/healthz');
    const made = none.headers.get('x-request-id');
    expect(made).toMatch(UUID);
    expect((await requestLine(app, made!)).status).toBe(200);

    for (const unfit of ['has spaces in it', 'x'.repeat(129), '{"json":1}, and more']) {
      const res = await app.http.get('/healthz', { headers: { 'x-request-id': unfit } });
      expect(res.headers.get('x-request-id')).toMatch(UUID);
    }

    // On the verify lane too, and on errors.
    const laneId = `lane-${randomBytes(6).toString('hex')}`;
    const lane = await app.http.post(VERIFY, { key: 'x' }, { headers: { 'x-request-id': laneId } });
    expect(lane.status).toBe(401);
    expect(lane.headers.get('x-request-id')).toBe(laneId);
    expect(await requestLine(app, laneId)).toMatchObject({ route: VERIFY, status: 401 });
    // The lane writes the header itself (one writeHead): on its answers too, and made up when unfit.
    const answered = await app.http.post(VERIFY, { key: 'x' }, { headers: { 'x-request-id': `${laneId}-ok`, authorization: `Bearer ${service}` } });
    expect(answered.status).toBe(200);
    expect(answered.headers.get('x-request-id')).toBe(`${laneId}-ok`);
    const unfitOnLane = await app.http.post(VERIFY, { key: 'x' }, { headers: { 'x-request-id': 'has spaces', authorization: `Bearer ${service}` } });
    expect(unfitOnLane.headers.get('x-request-id')).toMatch(UUID);
    expect(unfitOnLane.headers.get('content-type')).toBe('application/json; charset=utf-8');
    const again = await app.http.get('/healthz');
    expect(again.headers.get('x-request-id')).not.toBe(made);
  });

  it('never writes a bearer token, a cookie or an API key plaintext, whatever the request', async () => {
    const run = randomBytes(4).toString('hex');
    const cookie = `session=cookie-${randomBytes(12).toString('hex')}`;
    const withCookie = (token: string) => ({ headers: { authorization: `Bearer ${token}`, cookie } });
    const tenant = (await app.http.post('/v1/tenants', { slug: `secret-${run}`, name: 'Secretive' }, withCookie(admin))).body;
    await app.http.post('/v1/catalog/trial-request', { tenant_id: tenant.id, product: 'analytics' }, withCookie(admin));
    const created = await app.http.post('/v1/api-keys', { tenant_id: tenant.id, name: 'gw', product: 'analytics' }, withCookie(admin));
    expect(created.status).toBe(201);
    const plaintext: string = created.body.plaintext;
    // Verify on the REST lane (cold and warm), over tRPC, and with the key where it does not belong.
    expect((await app.http.post(VERIFY, { key: plaintext }, withCookie(service))).body).toMatchObject({ valid: true });
    expect((await app.http.post(VERIFY, { key: plaintext, product: 'analytics' }, withCookie(service))).body).toMatchObject({ valid: true });
    expect((await app.http.post(VERIFY, plaintext, { headers: { ...withCookie(service).headers, 'content-type': 'text/plain' } })).body).toMatchObject({ valid: false });
    expect((await app.http.post('/trpc/apiKeys.verify', { key: plaintext }, withCookie(service))).status).toBe(200);
    expect((await app.http.post('/v1/api-keys', { tenant_id: tenant.id, name: plaintext, scopes: plaintext }, withCookie(admin))).status).toBe(400);
    expect((await app.http.get(`/v1/nothing-here?key=${encodeURIComponent(plaintext)}`, withCookie(admin))).status).toBe(404);
    // Rejected tokens, well-formed and not.
    const forged = `${admin.slice(0, -8)}AAAAAAAA`;
    expect((await app.http.get(`/v1/tenants/${tenant.id}`, withCookie(forged))).status).toBe(401);
    expect((await app.http.post(VERIFY, { key: plaintext }, { headers: { authorization: `Basic ${forged}`, cookie } })).status).toBe(401);
    await sleep(200);

    const secrets = {
      plaintext,
      'plaintext secret part': plaintext.slice(-20),
      'admin token': admin,
      'admin token signature': admin.split('.')[2]!,
      'service token': service,
      'forged token': forged,
      cookie: cookie.split('=')[1]!,
    };
    expect(app.lines.length).toBeGreaterThan(10);
    const output = app.lines.join('');
    for (const [what, secret] of Object.entries(secrets)) {
      expect(output.includes(secret), `${what} appears in the log`).toBe(false);
    }
    expect(output).not.toMatch(/bearer|authorization|cookie/i);
  });
});

describe('the logger', () => {
  it('redacts secret fields whoever passes them', () => {
    const lines: string[] = [];
    const log = createLogger('info', (line) => lines.push(line));
    log.info('careless', {
      authorization: 'Bearer tok-1',
      key: 'bp_key-2',
      plaintext: 'bp_plain-3',
      cookie: 'sid=cookie-4',
      nested: { authorization: 'Bearer tok-5', plaintext: 'bp_plain-6', token: 'tok-7' },
      req: { headers: { authorization: 'Bearer tok-8', cookie: 'sid=cookie-9', 'set-cookie': 'sid=cookie-10' } },
      fine: 'visible',
    });
    expect(lines).toHaveLength(1);
    const entry = JSON.parse(lines[0]!);
    expect(entry).toMatchObject({ level: 'info', msg: 'careless', fine: 'visible', key: '[redacted]', nested: { token: '[redacted]' } });
    for (const secret of ['tok-1', 'key-2', 'plain-3', 'cookie-4', 'tok-5', 'plain-6', 'tok-7', 'tok-8', 'cookie-9', 'cookie-10']) {
      expect(lines[0]).not.toContain(secret);
    }
  });

  it('filters by level; silent writes nothing', () => {
    const lines: string[] = [];
    const warn = createLogger('warn', (line) => lines.push(line));
    warn.info('dropped');
    warn.warn('kept', { n: 1 });
    warn.error('kept too');
    expect(lines.map((l) => JSON.parse(l).msg)).toEqual(['kept', 'kept too']);
    expect(warn.enabled('info')).toBe(false);
    expect(warn.enabled('warn')).toBe(true);
    const silent = createLogger('silent', (line) => lines.push(line));
    silent.error('nothing');
    expect(lines).toHaveLength(2);
    expect(silent.enabled('error')).toBe(false);
  });

  it('writes no request lines below info', async () => {
    const quiet = await startLoggedApp('warn', { mode: 'off' });
    try {
      expect((await quiet.http.get('/healthz')).status).toBe(200);
      await sleep(100);
      expect(quiet.lines).toEqual([]);
    } finally {
      await quiet.close();
    }
  });

  it('LOG_FORMAT: json or pretty; by default JSON off a terminal', () => {
    expect(loadConfig({ LOG_FORMAT: 'pretty' }).logFormat).toBe('pretty');
    expect(loadConfig({ LOG_FORMAT: 'json' }).logFormat).toBe('json');
    expect(() => loadConfig({ LOG_FORMAT: 'xml' })).toThrow(/^invalid configuration: LOG_FORMAT: /);
    const prod = { APP_ENV: 'prod', KEYCLOAK_ISSUER: 'https://sso.example/realms/p', API_AUDIENCE: 'tenant-registry' };
    expect(loadConfig(prod).logFormat).toBe('json');
    if (!process.stderr.isTTY) expect(loadConfig({}).logFormat).toBe('json');
  });
});

describe('the server process', { timeout: 120_000 }, () => {
  afterAll(() => killAll());

  it('writes JSON request lines to stderr by default', async () => {
    const server = await spawnServer({ LOG_LEVEL: 'info' });
    await untilUp(server, 60_000);
    const res = await server.http.get('/healthz', { headers: { 'x-request-id': 'process-json-1' } });
    expect(res.headers.get('x-request-id')).toBe('process-json-1');
    await sleep(300);
    const lines = server.stderr().trim().split('\n');
    const entries = lines.filter((l) => l.startsWith('{')).map((l) => JSON.parse(l));
    expect(entries.find((e) => e.req_id === 'process-json-1')).toMatchObject({ level: 'info', msg: 'request', route: '/healthz', status: 200 });
    expect(entries.find((e) => e.msg === 'tenant-registry listening')).toBeDefined();
  });

  it('LOG_FORMAT=pretty writes readable lines', async () => {
    const server = await spawnServer({ LOG_LEVEL: 'info', LOG_FORMAT: 'pretty' });
    await untilUp(server, 60_000);
    await server.http.get('/healthz', { headers: { 'x-request-id': 'process-pretty-1' } });
    await sleep(300);
    const out = server.stderr();
    const line = out.split('\n').find((l) => l.includes('INFO') && l.includes('request'));
    expect(line, out).toBeDefined();
    expect(() => JSON.parse(line!)).toThrow();
    expect(out).toContain('process-pretty-1');
  });
});
