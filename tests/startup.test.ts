/**
 * The real entry point (src/server.ts) as a child process: configuration errors, the
 * pending-migrations guard, Postgres and memory start-up, and draining on SIGTERM.
 */
import http from 'node:http';
import net from 'node:net';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { provisionDatabase, provisionEmptyDatabase, type TestDatabase } from './harness/database.js';
import { exitWithin, killAll, spawnServer, stopServer, untilUp } from './harness/server-process.js';

const ACME_ID = '00000000-0000-0000-0000-000000000001';

/** Resolves with the error code of a TCP connect (or 'CONNECTED'). */
const connectOutcome = (port: number) =>
  new Promise<string>((resolve) => {
    const socket = net.connect({ port, host: '127.0.0.1' });
    socket.once('connect', () => {
      socket.destroy();
      resolve('CONNECTED');
    });
    socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
  });

afterAll(killAll);

describe('start-up configuration', { timeout: 60_000 }, () => {
  it.concurrent.each([
    ['APP_ENV', 'production'],
    ['ADDR', 'nonsense'],
    ['DATABASE_URL', 'mysql://x'],
    ['LOG_LEVEL', 'loud'],
    ['TRUST_PROXY', 'maybe'],
  ])('%s=%s stops it with exit code 1 and one line naming the variable', async (name, value) => {
    const server = await spawnServer({ [name]: value });
    const exit = await exitWithin(server, 30_000);
    expect(exit.code, server.stderr()).toBe(1);
    const lines = server.stderr().trim().split('\n');
    expect(lines[0]).toContain(name);
    expect(lines[0]).toMatch(/^invalid configuration: /);
    expect(lines).toHaveLength(1);
  });

  it('without DATABASE_URL it serves the memory store, seeded with acme', async () => {
    const server = await spawnServer({});
    try {
      await untilUp(server);
      const ready = await server.http.get('/readyz');
      expect(ready.status).toBe(200);
      expect(ready.body).toEqual({ status: 'ready' });
      const acme = await server.http.get(`/v1/tenants/${ACME_ID}`);
      expect(acme.status).toBe(200);
      expect(acme.body).toMatchObject({ id: ACME_ID, slug: 'acme', status: 'active' });
    } finally {
      await stopServer(server);
    }
  });
});

describe('start-up against Postgres', { timeout: 60_000 }, () => {
  let empty: TestDatabase;
  let migrated: TestDatabase;
  let pool: pg.Pool;

  beforeAll(async () => {
    empty = await provisionEmptyDatabase();
    migrated = await provisionDatabase();
    pool = new pg.Pool({ connectionString: migrated.url, max: 2 });
  });
  afterAll(async () => {
    await pool?.end();
    await empty?.drop();
    await migrated?.drop();
  });

  it('refuses to start on an unmigrated database, naming `npm run db:migrate`', async () => {
    const server = await spawnServer({ DATABASE_URL: empty.url });
    const exit = await exitWithin(server, 30_000);
    expect(exit.code, server.stderr()).not.toBe(0);
    expect(exit.code).not.toBeNull();
    expect(server.stderr()).toContain('npm run db:migrate');
    expect(server.stderr()).toMatch(/pending migration/);
  });

  it('starts on a migrated database: /readyz is ready and POST /v1/tenants writes to Postgres', async () => {
    const server = await spawnServer({ DATABASE_URL: migrated.url });
    try {
      await untilUp(server);
      const ready = await server.http.get('/readyz');
      expect(ready.status).toBe(200);
      expect(ready.body).toEqual({ status: 'ready' });
      const created = await server.http.post('/v1/tenants', { slug: 'startup-pg', name: 'Start-up' });
      expect(created.status, created.text).toBe(201);
      expect(created.body).toMatchObject({ slug: 'startup-pg', name: 'Start-up', status: 'trial' });
      const { rows } = await pool.query('SELECT id, slug, status FROM tenants WHERE slug = $1', ['startup-pg']);
      expect(rows).toEqual([{ id: created.body.id, slug: 'startup-pg', status: 'trial' }]);
      // The memory store's seed is not there: this really is Postgres.
      expect((await server.http.get(`/v1/tenants/${ACME_ID}`)).status).toBe(404);
      // The real listener includes the verify lane (any content type is read as JSON).
      const key = await server.http.post('/v1/api-keys', { tenant_id: created.body.id, name: 'start-up' });
      expect(key.status, key.text).toBe(201);
      const verified = await server.http.post('/v1/internal/api-keys/verify', JSON.stringify({ key: key.body.plaintext }), {
        headers: { 'content-type': 'text/plain' },
      });
      expect(verified.status, verified.text).toBe(200);
      expect(verified.body).toMatchObject({ valid: true });
    } finally {
      await stopServer(server);
    }
  });

  it('SIGTERM drains in-flight requests (201), refuses new connections, and exits 0 within 10 s', async () => {
    // One argon2 thread: the keys are hashed one after another (~200 ms each), so most are
    // still in flight when the signal arrives.
    const server = await spawnServer({ DATABASE_URL: migrated.url, ARGON2_THREADS: '1' });
    const agent = new http.Agent({ keepAlive: true });
    try {
      await untilUp(server);
      const tenant = await server.http.post('/v1/tenants', { slug: 'drain-me', name: 'Drain' });
      expect(tenant.status, tenant.text).toBe(201);

      const N = 6;
      const body = JSON.stringify({ tenant_id: tenant.body.id, name: 'drain' });
      const sent: Promise<void>[] = [];
      const answers = Array.from({ length: N }, (_, i) =>
        new Promise<{ status: number; at: number; body: string }>((resolve, reject) => {
          const req = http.request(
            { host: '127.0.0.1', port: server.port, method: 'POST', path: '/v1/api-keys', agent, headers: { 'content-type': 'application/json' } },
            (res) => {
              let text = '';
              res.setEncoding('utf8').on('data', (c: string) => (text += c));
              res.on('end', () => resolve({ status: res.statusCode ?? 0, at: Date.now(), body: text }));
            },
          );
          req.on('error', reject);
          sent[i] = new Promise((done) => req.once('finish', () => done()));
          req.end(body);
        }),
      );
      await Promise.all(sent);
      // The first answer took a whole hash (~200 ms) of idle event loop in the server: by then
      // it has accepted and parsed the others, which wait for the one argon2 thread.
      const first = await Promise.race(answers);
      expect(first.status, first.body).toBe(201);
      const signalledAt = Date.now();
      server.proc.kill('SIGTERM');

      // New connections are refused while the old ones drain.
      let refused = '';
      for (let i = 0; i < 100 && refused !== 'ECONNREFUSED'; i++) {
        refused = await connectOutcome(server.port);
        if (refused !== 'ECONNREFUSED') await new Promise((resolve) => setTimeout(resolve, 20));
      }
      const refusedAt = Date.now();
      expect(refused).toBe('ECONNREFUSED');

      const results = await Promise.all(answers);
      for (const r of results) expect(r.status, r.body).toBe(201);
      const lastAnswer = Math.max(...results.map((r) => r.at));
      expect(results.filter((r) => r.at > signalledAt).length).toBeGreaterThanOrEqual(3);
      expect(refusedAt).toBeLessThan(lastAnswer);

      const exit = await exitWithin(server, 10_000);
      expect(exit).toMatchObject({ code: 0, signal: null });
      expect(exit.at - signalledAt).toBeLessThan(10_000);
      // Drained connections are closed with their last answer (not after keepAliveTimeout).
      expect(exit.at - lastAnswer).toBeLessThan(3000);
      const { rows } = await pool.query<{ n: number }>('SELECT count(*)::int AS n FROM api_keys WHERE tenant_id = $1', [tenant.body.id]);
      expect(rows[0]!.n).toBe(N);
    } finally {
      agent.destroy();
      await stopServer(server);
    }
  });
});
