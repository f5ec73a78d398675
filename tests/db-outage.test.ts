/**
 * The database goes away and comes back (Postgres only): the real server (src/server.ts, a
 * child process) reaches Postgres through a TCP proxy that the test cuts and restores.
 *
 * Two kinds of cut: `reset` (~3 s; every connection dropped, new ones reset: a database that
 * restarts or refuses) and `hang` (8 s; a black hole: connections stay open and nothing gets
 * through, as in a partition, so only the service's own timeouts end the wait).
 * Under a steady load of creates, reads and verifies, a cut must give:
 *   - /readyz 503 within 2 s of the cut, and 503 for as long as the cut lasts;
 *   - fast failures: every request answered within 5 s, with 2xx or
 *     503 {code: SERVICE_UNAVAILABLE, message} and nothing else (never a 500);
 *   - a process that stays up, /healthz 200 throughout, no unexpected-error log lines;
 *   - recovery by itself after the restore (readyz 200, requests succeed again);
 *   - every tenant acknowledged with 201 present in Postgres afterwards.
 * And a server started while the database is down starts not ready and becomes ready when
 * it comes back. (A reachable but unmigrated database still stops start-up: see
 * tests/startup.test.ts, "refuses to start on an unmigrated database".)
 *
 * The measured numbers are printed as `[db-outage] …` lines.
 *
 * On PGlite (no TEST_DATABASE_URL) the proxy also serializes connections (see
 * harness/tcp-proxy.ts), the load is lighter, the hang variant is skipped, and a 503 after
 * recovery is tolerated: that backend is one single-threaded session sharing this process.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { provisionDatabase, type TestDatabase } from './harness/database.js';
import { randomSlug } from './harness/each-store.js';
import { killAll, spawnServer, stopServer, untilUp } from './harness/server-process.js';
import { TcpProxy, hostPort } from './harness/tcp-proxy.js';

const CLIENT_TIMEOUT_MS = 10_000;
/** The cut: ~3 s as the issue asks; a hang lasts longer, to show the timeouts bound every request. */
const CUT_MS = { reset: 3000, hang: 8000 } as const;
/** What the issue demands. */
const READY_503_WITHIN_MS = 2000;
const MAX_REQUEST_MS = 5000;
/** "Recovers by itself within a few seconds" (generous: the machine is shared). */
const RECOVER_WITHIN_MS = 10_000;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface Sample {
  op: string;
  start: number;
  end: number;
  /** HTTP status, or 0 when the request itself failed (no answer, timeout). */
  status: number;
  body: any;
  error?: string;
}

/** One request with the client timeout; never throws. */
async function call(base: string, op: string, method: string, path: string, body?: unknown): Promise<Sample> {
  const start = Date.now();
  try {
    const res = await fetch(base + path, {
      method,
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(CLIENT_TIMEOUT_MS),
    });
    const text = await res.text();
    let parsed: unknown;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      parsed = text;
    }
    return { op, start, end: Date.now(), status: res.status, body: parsed };
  } catch (err) {
    return { op, start, end: Date.now(), status: 0, body: undefined, error: (err as Error).message };
  }
}

const isOk = (s: Sample) => s.status >= 200 && s.status < 300;
const isUnavailable = (s: Sample) =>
  s.status === 503 && s.body?.code === 'SERVICE_UNAVAILABLE' && typeof s.body?.message === 'string' && s.body.message.length > 0;
const describeSample = (s: Sample, t0: number) =>
  `${s.op} +${s.start - t0}ms..+${s.end - t0}ms → ${s.status || s.error} ${JSON.stringify(s.body)?.slice(0, 200)}`;

/** Starts `work` every `everyMs` (without waiting for the previous one) until stopped. */
function every(everyMs: number, work: () => Promise<Sample>) {
  const samples: Sample[] = [];
  const running: Promise<void>[] = [];
  const timer = setInterval(() => running.push(work().then((s) => void samples.push(s))), everyMs);
  return {
    samples,
    async stop() {
      clearInterval(timer);
      await Promise.all(running);
    },
  };
}

/** Unexpected-error lines of the server's log (a 500 or a stray rejection logs one). */
const unexpectedLogLines = (stderr: string) =>
  stderr.split('\n').filter((l) => /unexpected error|unhandled rejection|uncaught/i.test(l));

describe('database outage [postgres, real server process]', { timeout: 120_000 }, () => {
  let db: TestDatabase;
  let proxy: TcpProxy;
  /** Straight to Postgres, not through the proxy. */
  let direct: pg.Pool;

  beforeAll(async () => {
    db = await provisionDatabase();
    // PGlite needs the proxy to give the backend to one connection at a time (see tcp-proxy.ts).
    proxy = await TcpProxy.start(hostPort(db.url), { serializeSessions: db.kind === 'pglite' });
    direct = new pg.Pool({ connectionString: db.url, max: 2 });
  });
  afterAll(async () => {
    await killAll();
    await direct?.end();
    await proxy?.close();
    await db?.drop();
  });

  it.for(['reset', 'hang'] as const)('a cut (%s) under load: readyz 503 within 2 s, fast 503s, the process stays up, recovery by itself, no acknowledged write lost', async (mode, { skip }) => {
    // PGlite behind the serializing proxy is one single-threaded backend sharing the test's
    // CPU: fine for a reset, but its post-restore backlog is no fair measure of a partition.
    if (mode === 'hang' && db.kind === 'pglite') skip('the hang variant needs a real Postgres (TEST_DATABASE_URL)');
    proxy.restore();
    const server = await spawnServer({ DATABASE_URL: proxy.rewrite(db.url) });
    try {
      await untilUp(server);
      expect((await server.http.get('/readyz')).status).toBe(200);
      const tenant = await server.http.post('/v1/tenants', { slug: randomSlug('verify'), name: 'Verify' });
      expect(tenant.status, tenant.text).toBe(201);
      const key = await server.http.post('/v1/api-keys', { tenant_id: tenant.body.id, name: 'outage' });
      expect(key.status, key.text).toBe(201);
      // Warm: the verify cache holds the key (a cold verify spends an argon2 run first).
      const warm = await server.http.post('/v1/internal/api-keys/verify', { key: key.body.plaintext });
      expect(warm.body).toMatchObject({ valid: true });

      const t0 = Date.now();
      const base = server.url;
      const samples: Sample[] = [];
      const acknowledged: { id: string; slug: string }[] = [];
      let stopLoad = false;

      // Writers/readers: create a tenant, read it back, again and again.
      const crud = async () => {
        while (!stopLoad) {
          const slug = randomSlug('out');
          const created = await call(base, 'create', 'POST', '/v1/tenants', { slug, name: 'Outage' });
          samples.push(created);
          if (created.status === 201) {
            acknowledged.push({ id: created.body.id, slug });
            samples.push(await call(base, 'read', 'GET', `/v1/tenants/${created.body.id}`));
          } else {
            await sleep(20);
          }
        }
      };
      // A gateway verifying a key (its own lane, its own cache).
      const verifier = async () => {
        while (!stopLoad) {
          const s = await call(base, 'verify', 'POST', '/v1/internal/api-keys/verify', { key: key.body.plaintext });
          samples.push(s);
          await sleep(s.status === 200 ? 20 : 50);
        }
      };
      // (Two writers on PGlite: it is one backend, sharing this process's CPU.)
      const writers = Array.from({ length: db.kind === 'pglite' ? 2 : 4 }, crud);
      const load = [...writers, verifier()];
      const readyz = every(100, () => call(base, 'readyz', 'GET', '/readyz'));
      const healthz = every(250, () => call(base, 'healthz', 'GET', '/healthz'));

      await sleep(1500);
      const cutAt = Date.now();
      proxy.cut(mode);
      await sleep(CUT_MS[mode]);
      const restoreAt = Date.now();
      proxy.restore();

      // Until readyz is 200 again, and a create and a verify succeed, after the restore.
      const recovered = () =>
        readyz.samples.some((s) => s.start >= restoreAt && s.status === 200) &&
        samples.some((s) => s.op === 'create' && s.start >= restoreAt && s.status === 201) &&
        samples.some((s) => s.op === 'verify' && s.start >= restoreAt && s.status === 200);
      while (!recovered() && Date.now() - restoreAt < RECOVER_WITHIN_MS + 5000) await sleep(50);
      await sleep(1500);
      stopLoad = true;
      await Promise.all(load);
      await readyz.stop();
      await healthz.stop();

      const all = [...samples, ...readyz.samples, ...healthz.samples];
      const show = (list: Sample[]) =>
        [`cut at +${cutAt - t0}ms, restored at +${restoreAt - t0}ms`, ...list.slice(0, 10).map((s) => describeSample(s, t0))].join('\n');

      // Fast failures, and no status but 2xx and 503 (never a 500, never a hang).
      const api = samples;
      const noAnswer = all.filter((s) => s.status === 0);
      expect(noAnswer, `${show(noAnswer)}\n--- server stderr:\n${server.stderr().slice(-4000)}`).toEqual([]);
      const unexpected = api.filter((s) => !isOk(s) && !isUnavailable(s));
      expect(unexpected, show(unexpected)).toEqual([]);
      const slow = all.filter((s) => s.end - s.start >= MAX_REQUEST_MS);
      expect(slow, show(slow)).toEqual([]);

      // The cut was felt: requests that started during it failed with 503.
      const duringCut = api.filter((s) => s.start >= cutAt + 100 && s.end <= restoreAt);
      expect(duringCut.length).toBeGreaterThan(0);
      // (In a hang the change feed's connection is not known to be dead, so verify may still
      // answer from its cache, whose entries live ≤ 60 s; a reset stops the cache at once.)
      const servedDuringCut = duringCut.filter((s) => s.status !== 503 && !(mode === 'hang' && s.op === 'verify'));
      expect(servedDuringCut, show(servedDuringCut)).toEqual([]);

      // /readyz: 503 within 2 s of the cut, and 503 until the restore.
      const first503 = readyz.samples.filter((s) => s.start >= cutAt && s.status === 503).sort((a, b) => a.end - b.end)[0];
      expect(first503, 'readyz never answered 503').toBeDefined();
      const readyLagMs = first503!.end - cutAt;
      expect(readyLagMs).toBeLessThan(READY_503_WITHIN_MS);
      // (Every answer given from 2 s after the cut until the restore.)
      const readyDuringCut = readyz.samples.filter((s) => s.end >= cutAt + READY_503_WITHIN_MS && s.end <= restoreAt);
      expect(readyDuringCut.length).toBeGreaterThan(0);
      expect(readyDuringCut.filter((s) => s.status !== 503).map((s) => describeSample(s, t0))).toEqual([]);
      expect(readyDuringCut.every((s) => s.body?.status === 'unavailable')).toBe(true);

      // /healthz 200 throughout, and the process is still the same one.
      expect(healthz.samples.length).toBeGreaterThan(10);
      const unhealthy = healthz.samples.filter((s) => s.status !== 200);
      expect(unhealthy, show(unhealthy)).toEqual([]);
      expect(server.running()).toBe(true);
      expect(unexpectedLogLines(server.stderr())).toEqual([]);

      // Recovery by itself: readyz 200 and successful requests, within a few seconds.
      const ready200 = readyz.samples.filter((s) => s.start >= restoreAt && s.status === 200).sort((a, b) => a.end - b.end)[0];
      expect(ready200, 'readyz never answered 200 after the restore').toBeDefined();
      const readyAgainMs = ready200!.end - restoreAt;
      expect(readyAgainMs).toBeLessThan(RECOVER_WITHIN_MS);
      const created201 = samples
        .filter((s) => s.op === 'create' && s.start >= restoreAt && s.status === 201)
        .sort((a, b) => a.end - b.end)[0];
      expect(created201, 'no create succeeded after the restore').toBeDefined();
      const writesAgainMs = created201!.end - restoreAt;
      expect(writesAgainMs).toBeLessThan(RECOVER_WITHIN_MS);
      const verified = samples.filter((s) => s.op === 'verify' && s.start >= restoreAt && s.status === 200);
      expect(verified.length).toBeGreaterThan(0);
      expect(verified.every((s) => s.body?.valid === true)).toBe(true);
      // Once recovered, it stays recovered: everything that started a moment later succeeded.
      const settledAt = Math.max(ready200!.end, created201!.end) + 500;
      const afterwards = api.filter((s) => s.start >= settledAt);
      expect(afterwards.length).toBeGreaterThan(0);
      const failedAfterwards = afterwards.filter((s) => !isOk(s));
      if (db.kind === 'pglite') {
        // PGlite is one single-threaded backend, shared with this test's CPU, behind a proxy that
        // queues connections for it: on a loaded machine a new connection can wait past the
        // pool's 1.5 s connect timeout (a 503) with nothing wrong in the service. Real Postgres
        // gets the strict check.
        if (failedAfterwards.length) console.info(`[db-outage] ${failedAfterwards.length} 503s after recovery on PGlite (proxy ${JSON.stringify(proxy.stats)})`);
        expect(failedAfterwards.length).toBeLessThan(afterwards.length);
      } else {
        expect(failedAfterwards, show(failedAfterwards)).toEqual([]);
      }

      // Every acknowledged write is in Postgres.
      expect(acknowledged.length).toBeGreaterThan(0);
      const { rows } = await direct.query<{ id: string; slug: string }>('SELECT id, slug FROM tenants WHERE id = ANY($1::uuid[])', [
        acknowledged.map((a) => a.id),
      ]);
      const stored = new Map(rows.map((r) => [r.id, r.slug]));
      const lost = acknowledged.filter((a) => stored.get(a.id) !== a.slug);
      expect(lost).toEqual([]);

      const cutSamples = api.filter((s) => s.end >= cutAt && s.start <= restoreAt);
      const maxDuringCut = Math.max(...cutSamples.map((s) => s.end - s.start));
      const slowest = [...all].sort((a, b) => b.end - b.start - (a.end - a.start))[0]!;
      const maxOverall = Math.max(...all.map((s) => s.end - s.start));
      const count = (op: string, pred: (s: Sample) => boolean) => api.filter((s) => s.op === op && pred(s)).length;
      console.info(
        `[db-outage] ${mode}: cut → readyz 503: ${readyLagMs} ms; max request latency during the cut: ${maxDuringCut} ms ` +
          `(overall max incl. probes: ${maxOverall} ms: ${slowest.op} ${slowest.status} started ${slowest.start - cutAt} ms after the cut); restore → readyz 200: ${readyAgainMs} ms; ` +
          `restore → first 201: ${writesAgainMs} ms; requests: ${api.length} (creates 201: ${acknowledged.length}, ` +
          `503: ${api.filter((s) => s.status === 503).length} [${['create', 'read', 'verify'].map((op) => `${op} ${count(op, (s) => s.status === 503)}`).join(', ')}]), ` +
          `readyz probes: ${readyz.samples.length}, healthz probes: ${healthz.samples.length}` +
          (db.kind === 'pglite' ? `; serializing proxy: longest hold ${proxy.stats.maxHoldMs} ms, longest wait ${proxy.stats.maxWaitMs} ms` : ''),
      );
    } finally {
      await stopServer(server);
    }
  });

  it('a server started while the database is down starts (healthz 200, readyz 503) and becomes ready when it comes back', async () => {
    proxy.cut();
    const server = await spawnServer({ DATABASE_URL: proxy.rewrite(db.url) });
    try {
      await untilUp(server);
      expect(server.running()).toBe(true);
      expect(server.stderr()).toMatch(/database is unreachable; starting not ready/);
      const health = await server.http.get('/healthz');
      expect(health.status).toBe(200);
      const notReady = await server.http.get('/readyz');
      expect(notReady.status).toBe(503);
      expect(notReady.body).toEqual({ status: 'unavailable' });
      const create = await call(server.url, 'create', 'POST', '/v1/tenants', { slug: randomSlug('down'), name: 'Down' });
      expect(create.status, JSON.stringify(create.body)).toBe(503);
      expect(isUnavailable(create)).toBe(true);
      expect(create.end - create.start).toBeLessThan(MAX_REQUEST_MS);

      const restoreAt = Date.now();
      proxy.restore();
      let readyAt: number | undefined;
      while (readyAt === undefined && Date.now() - restoreAt < RECOVER_WITHIN_MS) {
        const r = await call(server.url, 'readyz', 'GET', '/readyz');
        if (r.status === 200) readyAt = r.end;
        else await sleep(100);
      }
      expect(readyAt, 'not ready within 10 s of the restore').toBeDefined();
      const slug = randomSlug('up');
      const created = await server.http.post('/v1/tenants', { slug, name: 'Up' });
      expect(created.status, created.text).toBe(201);
      const { rows } = await direct.query('SELECT slug FROM tenants WHERE id = $1', [created.body.id]);
      expect(rows).toEqual([{ slug }]);
      expect(server.running()).toBe(true);
      expect(unexpectedLogLines(server.stderr())).toEqual([]);
      console.info(`[db-outage] started while down: restore → readyz 200: ${readyAt! - restoreAt} ms`);
    } finally {
      proxy.restore();
      await stopServer(server);
    }
  });
});
