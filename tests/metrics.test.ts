/**
 * GET /metrics (Prometheus text, prom-client): the series exist and move — the request
 * histogram by method/route/status, verify outcomes by code, verify cache hits and misses,
 * the argon2 pool's queue and busy workers, the database pool (Postgres store), process
 * metrics — on both stores; no token needed; METRICS=off removes it; METRICS_ADDR moves it
 * to a listener of its own.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import type pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.js';
import { eachStore, newTenant } from './harness/each-store.js';
import { Http } from './harness/http.js';
import { OidcIssuer } from './harness/oidc-issuer.js';
import { freePort } from './harness/run.js';
import { killAll, spawnServer, untilUp } from './harness/server-process.js';
import { startServer, type TestServer } from './harness/server.js';

const VERIFY = '/v1/internal/api-keys/verify';
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

type Samples = Map<string, number>;

/** `name{a="x",b="y"}` → value, labels in the order prom-client writes them. */
function parse(text: string): Samples {
  const samples: Samples = new Map();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const at = line.lastIndexOf(' ');
    samples.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return samples;
}

async function scrape(http: Http): Promise<Samples> {
  const res = await http.get('/metrics');
  expect(res.status, res.text).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
  return parse(res.text);
}

const value = (s: Samples, key: string) => s.get(key) ?? 0;
const names = (s: Samples) => new Set([...s.keys()].map((k) => k.split('{')[0]));
const requests = (method: string, route: string, status: number) =>
  `http_request_duration_seconds_count{method="${method}",route="${route}",status="${status}"}`;
const outcome = (code: string) => `tenant_registry_verify_outcomes_total{code="${code}"}`;
const cache = (result: 'hit' | 'miss') => `tenant_registry_verify_cache_lookups_total{result="${result}"}`;

/** Scrapes until `ok` holds (for gauges caught mid-flight). */
async function until(http: Http, ok: (s: Samples) => boolean, ms = 10_000): Promise<Samples> {
  const deadline = Date.now() + ms;
  let last = await scrape(http);
  while (!ok(last) && Date.now() < deadline) {
    await sleep(10);
    last = await scrape(http);
  }
  return last;
}

eachStore('metrics', (server, kind) => {
  it('the request histogram counts each request under its method, route template and status', async () => {
    const http = server().http;
    const tenant = await newTenant(server());
    const before = await scrape(http);
    await http.get(`/v1/tenants/${tenant.id}`);
    await http.get(`/v1/tenants/${tenant.id}`);
    await http.get(`/v1/tenants/${randomUUID()}`);
    await http.post('/v1/tenants', { slug: 'NOT A SLUG', name: 'x' });
    await http.get('/healthz');
    await http.post(VERIFY, { key: 'nope' });
    const input = encodeURIComponent(JSON.stringify({ id: tenant.id }));
    await http.get(`/trpc/tenants.get?input=${input}`);
    await http.get(`/definitely/not/here/${tenant.id}`);
    await sleep(50);
    const after = await scrape(http);
    const moved = (key: string) => value(after, key) - value(before, key);
    expect(moved(requests('GET', '/v1/tenants/{id}', 200))).toBe(2);
    expect(moved(requests('GET', '/v1/tenants/{id}', 404))).toBe(1);
    expect(moved(requests('POST', '/v1/tenants', 400))).toBe(1);
    expect(moved(requests('GET', '/healthz', 200))).toBe(1);
    expect(moved(requests('POST', VERIFY, 200))).toBe(1);
    expect(moved(requests('GET', '/trpc/tenants.get', 200))).toBe(1);
    expect(moved(requests('GET', 'unmatched', 404))).toBe(1);
    const bucket = `http_request_duration_seconds_bucket{le="+Inf",method="GET",route="/v1/tenants/{id}",status="200"}`;
    expect(value(after, bucket)).toBe(value(after, requests('GET', '/v1/tenants/{id}', 200)));
    expect(value(after, `http_request_duration_seconds_sum{method="GET",route="/v1/tenants/{id}",status="200"}`)).toBeGreaterThan(0);
    // No label carries an id.
    const text = (await http.get('/metrics')).text;
    // Well-formed text format: each metric described once, every sample `name{labels} number`.
    for (const line of text.split('\n').filter((l) => l && !l.startsWith('#'))) {
      expect(line).toMatch(/^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="(\\.|[^"\\])*",?)*\})? -?(\d+(\.\d+)?(e[-+]?\d+)?|NaN|Nan|\+Inf|-Inf)$/); // prom-client writes NaN as "Nan" (Prometheus reads either)
    }
    const types = text.split('\n').filter((l) => l.startsWith('# TYPE '));
    expect(new Set(types).size).toBe(types.length);
    expect(types).toContain('# TYPE http_request_duration_seconds histogram');
    expect(text).not.toContain(tenant.id);
    expect(text).not.toMatch(/route="[^"]*[0-9a-f]{8}-[0-9a-f]{4}-/);
  });

  it('verify outcomes by code, and the cache hits and misses', async () => {
    const http = server().http;
    const tenant = await newTenant(server());
    expect((await http.post('/v1/catalog/trial-request', { tenant_id: tenant.id, product: 'analytics' })).status).toBe(201);
    const key = (await http.post('/v1/api-keys', { tenant_id: tenant.id, name: 'metrics', product: 'analytics' })).body;
    const before = await scrape(http);
    for (const code of ['VALID', 'MALFORMED', 'NOT_FOUND', 'REVOKED', 'EXPIRED', 'TENANT_FROZEN', 'NOT_ENTITLED']) {
      expect(before.has(outcome(code)), code).toBe(true);
    }
    expect((await http.post(VERIFY, { key: key.plaintext })).body).toMatchObject({ valid: true }); // miss, then remembered
    expect((await http.post(VERIFY, { key: key.plaintext })).body).toMatchObject({ valid: true }); // hit
    expect((await http.post(VERIFY, { key: key.plaintext, product: 'billing' })).body).toMatchObject({ code: 'NOT_ENTITLED' }); // hit
    expect((await http.post(VERIFY, { key: 'garbage' })).body).toMatchObject({ code: 'MALFORMED' }); // no lookup
    // Over tRPC too.
    expect((await http.post('/trpc/apiKeys.verify', { key: key.plaintext })).status).toBe(200); // hit
    // The gauge is read before the revoke: on Postgres the revoke's own notification comes back
    // through LISTEN a moment later and may drop the entry the next verify caches.
    expect(value(await scrape(http), 'tenant_registry_verify_cache_entries')).toBeGreaterThanOrEqual(1);
    await http.delete(`/v1/api-keys/${key.api_key.id}`);
    expect((await http.post(VERIFY, { key: key.plaintext })).body).toMatchObject({ code: 'REVOKED' }); // miss (dropped on revoke)
    const after = await scrape(http);
    const moved = (k: string) => value(after, k) - value(before, k);
    expect(moved(outcome('VALID'))).toBe(3);
    expect(moved(outcome('NOT_ENTITLED'))).toBe(1);
    expect(moved(outcome('MALFORMED'))).toBe(1);
    expect(moved(outcome('REVOKED'))).toBe(1);
    expect(moved(outcome('NOT_FOUND'))).toBe(0);
    expect(moved(cache('hit'))).toBe(3);
    expect(moved(cache('miss'))).toBe(2);
  });

  it('process metrics are there', async () => {
    const all = names(await scrape(server().http));
    for (const name of ['process_cpu_user_seconds_total', 'process_resident_memory_bytes', 'process_start_time_seconds', 'nodejs_eventloop_lag_seconds', 'nodejs_heap_size_used_bytes']) {
      expect(all.has(name), name).toBe(true);
    }
  });

  if (kind === 'postgres') {
    it('database pool gauges: connections in use, idle and waiting', async () => {
      const http = server().http;
      const pool = (server().store as unknown as { pool: pg.Pool }).pool;
      const first = await scrape(http);
      for (const name of ['tenant_registry_db_pool_in_use', 'tenant_registry_db_pool_idle', 'tenant_registry_db_pool_waiting', 'tenant_registry_db_pool_connections']) {
        expect(first.has(name), name).toBe(true);
      }
      // Hold every connection of the pool (DATABASE_POOL_MAX: 10, or 1 on PGlite) and queue one more.
      const max = pool.options.max ?? 10;
      const held: pg.PoolClient[] = [];
      try {
        for (let i = 0; i < max; i++) held.push(await pool.connect());
        const waiting = pool.connect();
        const busy = await scrape(http);
        expect(busy.get('tenant_registry_db_pool_in_use')).toBe(max);
        expect(busy.get('tenant_registry_db_pool_waiting')).toBe(1);
        expect(busy.get('tenant_registry_db_pool_connections')).toBe(max);
        held.push(await (held.shift()!.release(), waiting));
      } finally {
        for (const c of held) c.release();
      }
      const calm = await scrape(http);
      expect(calm.get('tenant_registry_db_pool_in_use')).toBe(0);
      expect(calm.get('tenant_registry_db_pool_waiting')).toBe(0);
      expect(calm.get('tenant_registry_db_pool_idle')).toBeGreaterThanOrEqual(1);
    });
  } else {
    it('the memory store has no database pool gauges', async () => {
      expect([...names(await scrape(server().http))].filter((n) => n?.startsWith('tenant_registry_db_pool'))).toEqual([]);
    });
  }
});

describe('argon2 pool gauges', () => {
  let app: TestServer | undefined;
  afterAll(() => app?.close());

  it('show the queue and the busy workers while keys are hashed', async () => {
    app = await startServer('memory', { argon2: { threads: 1 } });
    const http = app.http;
    const idle = await scrape(http);
    expect(idle.get('tenant_registry_argon2_workers')).toBe(1);
    expect(idle.get('tenant_registry_argon2_running_workers')).toBe(1);
    expect(idle.get('tenant_registry_argon2_busy_workers')).toBe(0);
    expect(idle.get('tenant_registry_argon2_queue_length')).toBe(0);
    const tenant = await newTenant(app);
    // Four key creations on one worker: one hashing, the others queued behind it.
    const creations = Array.from({ length: 4 }, (_, i) => http.post('/v1/api-keys', { tenant_id: tenant.id, name: `k${i}` }));
    const busy = await until(http, (s) => value(s, 'tenant_registry_argon2_queue_length') >= 2);
    expect(busy.get('tenant_registry_argon2_busy_workers')).toBe(1);
    expect(busy.get('tenant_registry_argon2_queue_length')).toBeGreaterThanOrEqual(2);
    for (const res of await Promise.all(creations)) expect(res.status).toBe(201);
    const done = await scrape(http);
    expect(done.get('tenant_registry_argon2_busy_workers')).toBe(0);
    expect(done.get('tenant_registry_argon2_queue_length')).toBe(0);
  });
});

describe('/metrics needs no token', () => {
  let issuer: OidcIssuer | undefined;
  let app: TestServer | undefined;
  afterAll(async () => {
    await app?.close();
    await issuer?.close();
  });

  it('answers without a bearer token while /v1 says 401', async () => {
    issuer = await OidcIssuer.start();
    app = await startServer('memory', { auth: issuer.authenticator() });
    expect((await app.http.get('/v1/catalog')).status).toBe(401);
    const samples = await scrape(app.http);
    expect(value(samples, requests('GET', '/v1/catalog', 401))).toBe(1);
    const head = await app.http.request('HEAD', '/metrics');
    expect(head.status).toBe(200);
  });
});

describe('METRICS and METRICS_ADDR [real server process]', { timeout: 120_000 }, () => {
  afterAll(() => killAll());

  it('are validated like the other variables', () => {
    expect(loadConfig({}).METRICS).toBe('on');
    expect(() => loadConfig({ METRICS: 'maybe' })).toThrow(/^invalid configuration: METRICS: /);
    expect(() => loadConfig({ METRICS_ADDR: 'nonsense' })).toThrow(/^invalid configuration: METRICS_ADDR: /);
    expect(loadConfig({ METRICS_ADDR: '127.0.0.1:9464' }).METRICS_ADDR).toEqual({ host: '127.0.0.1', port: 9464 });
    expect(loadConfig({ METRICS_ADDR: ':9464' }).METRICS_ADDR).toEqual({ host: undefined, port: 9464 });
  });

  it('METRICS=off: no /metrics at all', async () => {
    const server = await spawnServer({ METRICS: 'off' });
    await untilUp(server, 60_000);
    const res = await server.http.get('/metrics');
    expect(res.status).toBe(404);
    expect(res.body).toMatchObject({ code: 'NOT_FOUND' });
    expect((await server.http.get('/healthz')).status).toBe(200);
  });

  it('METRICS_ADDR: /metrics on its own port, not on the main one', async () => {
    const port = await freePort();
    const server = await spawnServer({ METRICS_ADDR: `127.0.0.1:${port}` });
    await untilUp(server, 60_000);
    expect((await server.http.get('/healthz')).status).toBe(200);
    expect((await server.http.get('/metrics')).status).toBe(404);
    const side = new Http(`http://127.0.0.1:${port}`);
    let samples: Samples | undefined;
    for (let i = 0; i < 50 && !samples; i++) {
      samples = await scrape(side).catch(() => undefined);
      if (!samples) await sleep(100);
    }
    expect(samples).toBeDefined();
    expect(value(samples!, requests('GET', '/healthz', 200))).toBeGreaterThanOrEqual(1);
    expect(names(samples!).has('process_cpu_user_seconds_total')).toBe(true);
    expect((await side.get('/v1/catalog')).status).toBe(404);
    expect((await side.get(`/${randomBytes(4).toString('hex')}`)).status).toBe(404);
  });
});
