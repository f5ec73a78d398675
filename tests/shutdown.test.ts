/**
 * SIGTERM on the real server (src/server.ts as a child process, Postgres): what it owes on
 * the way out.
 *   - The batched `last_used_at` notes are written (the batcher's interval is 10 s, so
 *     without the flush on shutdown a fresh verify would leave it null).
 *   - Verifies in flight when the signal comes are answered, and their notes written too
 *     (the flush comes after the drain).
 *   - With the database unreachable, shutdown still ends within the 10 s grace, exit 0.
 * Draining in-flight writes, refusing new connections and exiting 0 within 10 s under a
 * load of in-flight API-key creations is covered by tests/startup.test.ts ("SIGTERM drains
 * in-flight requests …"), not repeated here.
 */
import http from 'node:http';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { provisionDatabase, type TestDatabase } from './harness/database.js';
import { randomSlug } from './harness/each-store.js';
import { exitWithin, killAll, spawnServer, stopServer, untilUp, type ServerProcess } from './harness/server-process.js';
import { TcpProxy, hostPort } from './harness/tcp-proxy.js';

const GRACE_MS = 10_000;

/** A POST on its own connection that resolves when the answer has been read. */
function post(server: ServerProcess, path: string, body: unknown, agent: http.Agent) {
  let sent!: Promise<void>;
  const answer = new Promise<{ status: number; body: any; at: number }>((resolve, reject) => {
    const req = http.request(
      { host: '127.0.0.1', port: server.port, method: 'POST', path, agent, headers: { 'content-type': 'application/json' } },
      (res) => {
        let text = '';
        res.setEncoding('utf8').on('data', (c: string) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text ? JSON.parse(text) : undefined, at: Date.now() }));
      },
    );
    req.on('error', reject);
    sent = new Promise((done) => req.once('finish', () => done()));
    req.end(JSON.stringify(body));
  });
  return { sent, answer };
}

describe('SIGTERM [postgres, real server process]', { timeout: 60_000 }, () => {
  let db: TestDatabase;
  let proxy: TcpProxy;
  /** Straight to Postgres, not through the proxy. */
  let direct: pg.Pool;
  /** The server's DATABASE_URL: through the proxy (PGlite needs it, see tcp-proxy.ts; the outage test cuts it). */
  let serverDbUrl: string;

  beforeAll(async () => {
    db = await provisionDatabase();
    proxy = await TcpProxy.start(hostPort(db.url), { serializeSessions: db.kind === 'pglite' });
    serverDbUrl = proxy.rewrite(db.url);
    direct = new pg.Pool({ connectionString: db.url, max: 2 });
  });
  afterAll(async () => {
    await killAll();
    await direct?.end();
    await proxy?.close();
    await db?.drop();
  });

  const lastUsed = async (keyId: string) => {
    const { rows } = await direct.query<{ last_used_at: Date | null }>('SELECT last_used_at FROM api_keys WHERE id = $1', [keyId]);
    expect(rows).toHaveLength(1);
    return rows[0]!.last_used_at;
  };

  async function tenantWithKeys(server: ServerProcess, n: number) {
    const tenant = await server.http.post('/v1/tenants', { slug: randomSlug('bye'), name: 'Shutdown' });
    expect(tenant.status, tenant.text).toBe(201);
    const keys: { id: string; plaintext: string }[] = [];
    for (let i = 0; i < n; i++) {
      const key = await server.http.post('/v1/api-keys', { tenant_id: tenant.body.id, name: `key ${i}` });
      expect(key.status, key.text).toBe(201);
      keys.push({ id: key.body.api_key.id, plaintext: key.body.plaintext });
    }
    return keys;
  }

  it('flushes the batched last_used_at: a key verified just before SIGTERM has it set after exit 0', async () => {
    proxy.restore();
    const server = await spawnServer({ DATABASE_URL: serverDbUrl });
    try {
      await untilUp(server);
      const [key] = await tenantWithKeys(server, 1);
      let start = Date.now();
      let verified = await server.http.post('/v1/internal/api-keys/verify', { key: key!.plaintext });
      let end = Date.now();
      expect(verified.status, verified.text).toBe(200);
      expect(verified.body).toMatchObject({ valid: true, key_id: key!.id });
      if ((await lastUsed(key!.id)) !== null) {
        // The 10 s timer happened to fire in between: verify again. The key was just written,
        // so the timer leaves it alone for 50 s; only the shutdown flush can write this one.
        start = Date.now();
        verified = await server.http.post('/v1/internal/api-keys/verify', { key: key!.plaintext });
        end = Date.now();
        expect(verified.body).toMatchObject({ valid: true });
      }
      const before = await lastUsed(key!.id);
      const signalledAt = Date.now();
      server.proc.kill('SIGTERM');
      const exit = await exitWithin(server, GRACE_MS);
      expect(exit, server.stderr()).toMatchObject({ code: 0, signal: null });
      expect(exit.at - signalledAt).toBeLessThan(GRACE_MS);

      const after = await lastUsed(key!.id);
      expect(after, 'last_used_at was not written on shutdown').not.toBeNull();
      expect(after!.getTime()).not.toBe(before?.getTime());
      // It is the verify's time (stored at millisecond precision).
      expect(after!.getTime()).toBeGreaterThanOrEqual(start - 1);
      expect(after!.getTime()).toBeLessThanOrEqual(end + 1);
      expect(server.stderr()).not.toMatch(/last_used_at flush failed|shutdown error|took too long/);
    } finally {
      await stopServer(server);
    }
  });

  it('verifies in flight at SIGTERM are answered, and their last_used_at written after the drain; exit 0 within 10 s', async () => {
    proxy.restore();
    // Cold keys cost one argon2 run each; one thread runs them one after another, so most of
    // them are still in flight when the signal arrives.
    const server = await spawnServer({ DATABASE_URL: serverDbUrl, ARGON2_THREADS: '1' });
    const agent = new http.Agent({ keepAlive: true });
    try {
      await untilUp(server);
      const keys = await tenantWithKeys(server, 5);
      const startedAt = Date.now();
      const calls = keys.map((k) => post(server, '/v1/internal/api-keys/verify', { key: k.plaintext }, agent));
      await Promise.all(calls.map((c) => c.sent));
      await Promise.race(calls.map((c) => c.answer));
      const signalledAt = Date.now();
      server.proc.kill('SIGTERM');

      const answers = await Promise.all(calls.map((c) => c.answer));
      for (const [i, a] of answers.entries()) expect(a.body, JSON.stringify(a.body)).toMatchObject({ valid: true, key_id: keys[i]!.id });
      expect(answers.every((a) => a.status === 200)).toBe(true);
      const afterSignal = answers.filter((a) => a.at > signalledAt).length;
      expect(afterSignal, 'no verify was still in flight at SIGTERM').toBeGreaterThanOrEqual(1);
      const exit = await exitWithin(server, GRACE_MS);
      expect(exit, server.stderr()).toMatchObject({ code: 0, signal: null });
      expect(exit.at - signalledAt).toBeLessThan(GRACE_MS);

      for (const k of keys) {
        const at = await lastUsed(k.id);
        expect(at, `last_used_at of ${k.id}`).not.toBeNull();
        expect(at!.getTime()).toBeGreaterThanOrEqual(startedAt - 1);
      }
      console.info(`[shutdown] ${afterSignal}/${keys.length} verifies answered after SIGTERM; exit ${exit.at - signalledAt} ms after the signal`);
    } finally {
      agent.destroy();
      await stopServer(server);
    }
  });

  it.each(['reset', 'hang'] as const)('with the database unreachable (%s), SIGTERM still exits 0 within 10 s', async (mode) => {
    proxy.restore();
    const server = await spawnServer({ DATABASE_URL: serverDbUrl });
    try {
      await untilUp(server);
      const [key] = await tenantWithKeys(server, 1);
      const verified = await server.http.post('/v1/internal/api-keys/verify', { key: key!.plaintext });
      expect(verified.body).toMatchObject({ valid: true });
      proxy.cut(mode);
      const signalledAt = Date.now();
      server.proc.kill('SIGTERM');
      const exit = await exitWithin(server, GRACE_MS + 2000);
      expect(exit, server.stderr()).toMatchObject({ code: 0, signal: null });
      expect(exit.at - signalledAt).toBeLessThan(GRACE_MS);
      // The note could not be written; the failure is logged, not thrown.
      expect(server.stderr()).toMatch(/last_used_at flush failed/);
      console.info(`[shutdown] database unreachable (${mode}): exit ${exit.at - signalledAt} ms after SIGTERM`);
    } finally {
      proxy.restore();
      await stopServer(server);
    }
  });
});
