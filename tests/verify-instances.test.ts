/**
 * Two real server processes (src/server.ts, A and B) on one Postgres database: a change made
 * through A reaches B's verify cache within 1 s (README "Revocation is immediate"), through
 * Postgres LISTEN/NOTIFY; and when the listener connections are killed, B serves nothing
 * stale while they are down and is back to normal once they reconnect.
 *
 * "B answers from its cache" is shown, not assumed: a key B has cached is revoked behind the
 * service's back (a plain UPDATE, no NOTIFY); B still answering `valid: true` for it proves the
 * answer came from memory, so the propagation measured afterwards is the feed's doing.
 *
 * On PGlite (no TEST_DATABASE_URL, no Docker) only the first test runs: PGlite serves every
 * socket connection from one database session, so a NOTIFY is delivered to the notifying
 * connection and never to another connection's LISTEN, and pg_terminate_backend does nothing.
 * CI sets TEST_DATABASE_URL (a real Postgres), where everything runs.
 *
 * Propagation is measured from the moment the change's response arrives: a verify is sent to B
 * every 50 ms (without waiting for the previous answer), and the time is when the first verify
 * that saw the change was sent; every later one must see it too. Its answer may take longer:
 * B drops the entry and runs argon2 again for that key (~200 ms, more on a loaded machine).
 * The numbers are printed as `[verify-instances] …` lines.
 */
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CHANGE_CHANNEL } from '../src/db/change-feed.js';
import { provisionDatabase, type TestDatabase } from './harness/database.js';
import { randomSlug } from './harness/each-store.js';
import { killAll, spawnServer, untilUp, type ServerProcess } from './harness/server-process.js';

const VERIFY = '/v1/internal/api-keys/verify';
const LISTENER = 'tenant-registry-listener';
/** What README promises for other instances. */
const PROPAGATION_MS = 1000;
const POLL_MS = 50;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const log = (msg: string) => console.info(`[verify-instances] ${msg}`);
const NO_NOTIFY_ON_PGLITE =
  'PGlite serves all socket connections from one session: NOTIFY never reaches another connection\'s LISTEN, and pg_terminate_backend is a no-op (runs with TEST_DATABASE_URL)';

type Answer = Record<string, any>;
type Created = { api_key: { id: string; tenant_id: string }; plaintext: string };
type Tenant = { id: string; slug: string };

const invalid = (code: string) => ({ valid: false, code });

async function call(server: ServerProcess, method: string, path: string, body?: unknown) {
  const res = await fetch(server.url + path, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(10_000),
  });
  const text = await res.text();
  return { status: res.status, text, body: text ? (JSON.parse(text) as Answer) : undefined };
}

async function verify(server: ServerProcess, body: unknown): Promise<Answer> {
  const res = await call(server, 'POST', VERIFY, body);
  expect(res.status, res.text).toBe(200);
  return res.body!;
}

async function ok(server: ServerProcess, method: string, path: string, body?: unknown): Promise<Answer> {
  const res = await call(server, method, path, body);
  expect(res.status, `${method} ${path}: ${res.text}`).toBeLessThan(300);
  return res.body!;
}

async function newTenant(server: ServerProcess, status: 'trial' | 'active' = 'active'): Promise<Tenant> {
  const tenant = (await ok(server, 'POST', '/v1/tenants', { slug: randomSlug('inst'), name: 'Instances' })) as Tenant;
  if (status === 'active') await ok(server, 'POST', `/v1/tenants/${tenant.id}/activate`);
  return tenant;
}

const createKey = async (server: ServerProcess, tenant: Tenant, extra: Record<string, unknown> = {}) =>
  (await ok(server, 'POST', '/v1/api-keys', { tenant_id: tenant.id, name: 'instances', ...extra })) as Created;

interface Poll {
  /** ms after `since` the verify was sent, and its answer arrived. */
  sent: number;
  answered?: number;
  answer?: Answer;
}

interface Propagation {
  /** ms after `since` of the first verify that was *sent* and saw the change. */
  sent: number;
  /** ms after `since` its answer arrived (includes B's argon2 re-run of the key). */
  answered: number;
  polls: Poll[];
}

/**
 * Sends a verify to `server` every 50 ms from `since` (not waiting for the previous one,
 * so that a slow answer on a loaded machine does not hide when the change arrived) until
 * one answers `done`. The propagation time is when the first verify that saw the change
 * was sent; every verify sent after it must see it too.
 */
async function propagation(server: ServerProcess, body: unknown, done: (a: Answer) => boolean, since: number, timeoutMs = 10_000): Promise<Propagation> {
  const polls: Poll[] = [];
  const pending: Promise<void>[] = [];
  let seen = false;
  for (let next = since; !seen && Date.now() - since < timeoutMs; next += POLL_MS) {
    await sleep(Math.max(0, next - Date.now()));
    if (seen) break;
    const poll: Poll = { sent: Date.now() - since };
    polls.push(poll);
    pending.push(
      verify(server, body).then((answer) => {
        poll.answer = answer;
        poll.answered = Date.now() - since;
        if (done(answer)) seen = true;
      }),
    );
  }
  await Promise.all(pending);
  const first = polls.find((p) => done(p.answer!));
  if (!first) return { sent: Infinity, answered: Infinity, polls };
  for (const p of polls.filter((q) => q.sent >= first.sent)) expect(done(p.answer!), `a verify sent ${p.sent} ms after the change`).toBe(true);
  return { sent: first.sent, answered: first.answered!, polls };
}

const describePropagation = (p: Propagation) => `sent ${p.sent} ms after the change (answered after ${p.answered} ms; ${p.polls.length} verify(s))`;

describe('verify across two server processes on one database', () => {
  let db: TestDatabase;
  let admin: pg.Client;
  let a: ServerProcess;
  let b: ServerProcess;
  let pglite = false;

  /** The listener backends of both processes that have run their LISTEN. */
  async function listeners(): Promise<{ pid: number; client_port: number; backend_start: Date }[]> {
    const { rows } = await admin.query(
      `SELECT pid, client_port, backend_start FROM pg_stat_activity
        WHERE datname = current_database() AND application_name = $1`,
      [LISTENER],
    );
    return rows;
  }

  async function untilListening(count: number, exclude: ReadonlySet<number> = new Set(), timeoutMs = 15_000) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const fresh = (await listeners()).filter((l) => !exclude.has(l.pid));
      if (fresh.length >= count) {
        // The feed turns healthy right after its LISTEN answers.
        await sleep(200);
        return fresh;
      }
      if (Date.now() > deadline) throw new Error(`only ${fresh.length} of ${count} listeners after ${timeoutMs} ms`);
      await sleep(20);
    }
  }

  /** Revokes a key behind the service's back: no NOTIFY, so only a cache would still call it valid. */
  const silentlyRevoke = (keyId: string) => admin.query('UPDATE api_keys SET revoked_at = now() WHERE id = $1', [keyId]);

  /** Verifies on `server` twice (the second from its cache) and checks the answers agree. */
  async function cacheOn(server: ServerProcess, body: unknown): Promise<Answer> {
    const first = await verify(server, body);
    expect(await verify(server, body)).toStrictEqual(first);
    return first;
  }

  beforeAll(async () => {
    db = await provisionDatabase();
    pglite = db.kind === 'pglite';
    admin = new pg.Client({ connectionString: db.url, application_name: 'verify-instances-test' });
    admin.on('error', () => {});
    await admin.connect();
    const env = { DATABASE_URL: db.url, ARGON2_THREADS: '1', LOG_LEVEL: 'warn' };
    [a, b] = await Promise.all([spawnServer(env), spawnServer(env)]);
    await Promise.all([untilUp(a), untilUp(b)]);
    if (!pglite) await untilListening(2);
  }, 120_000);

  afterAll(async () => {
    await killAll();
    await admin?.end().catch(() => undefined);
    await db?.drop();
  }, 60_000);

  it('both processes serve one database: a key made through A verifies on B, a revoke through A reaches a cold verify on B', async () => {
    const tenant = await newTenant(a);
    const key = await createKey(a, tenant, { scopes: ['s'] });
    expect(await verify(b, { key: key.plaintext })).toMatchObject({ valid: true, key_id: key.api_key.id, tenant_id: tenant.id, scopes: ['s'] });
    const other = await createKey(a, tenant);
    await ok(a, 'DELETE', `/v1/api-keys/${other.api_key.id}`);
    expect(await verify(b, { key: other.plaintext })).toStrictEqual(invalid('REVOKED'));
  }, 60_000);

  it('B answers from its cache, and a revoke through A reaches B within 1 s', async (ctx) => {
    ctx.skip(pglite, NO_NOTIFY_ON_PGLITE);
    const tenant = await newTenant(a);
    const key = await createKey(a, tenant);
    const probe = await createKey(a, tenant);
    expect(await cacheOn(b, { key: key.plaintext })).toMatchObject({ valid: true, key_id: key.api_key.id });
    expect(await cacheOn(b, { key: probe.plaintext })).toMatchObject({ valid: true, key_id: probe.api_key.id });

    // B serves its cached answer: the database already says revoked, B has not been told.
    await silentlyRevoke(probe.api_key.id);
    expect(await verify(b, { key: probe.plaintext }), 'B answers from its cache').toMatchObject({ valid: true });

    await ok(a, 'DELETE', `/v1/api-keys/${key.api_key.id}`);
    const since = Date.now();
    const revoked = await propagation(b, { key: key.plaintext }, (x) => x.code === 'REVOKED', since);
    expect(await verify(a, { key: key.plaintext }), 'A itself').toStrictEqual(invalid('REVOKED'));
    log(`revoke through A → REVOKED on B: ${describePropagation(revoked)}`);
    expect(revoked.sent).toBeLessThan(PROPAGATION_MS);
    for (const p of revoked.polls.filter((q) => q.sent < revoked.sent)) expect(p.answer).toMatchObject({ valid: true, key_id: key.api_key.id });

    // Any committed NOTIFY on the channel works the same (here one sent by hand for the probe).
    await admin.query('SELECT pg_notify($1, $2)', [CHANGE_CHANNEL, JSON.stringify({ kind: 'api_key', id: probe.api_key.id })]);
    const manual = await propagation(b, { key: probe.plaintext }, (x) => x.code === 'REVOKED', Date.now());
    expect(manual.sent).toBeLessThan(PROPAGATION_MS);
  }, 60_000);

  it('a tenant cancelled through A answers TENANT_FROZEN on B within 1 s, for every cached key', async (ctx) => {
    ctx.skip(pglite, NO_NOTIFY_ON_PGLITE);
    const tenant = await newTenant(a);
    await ok(a, 'POST', '/v1/catalog/trial-request', { tenant_id: tenant.id, product: 'analytics' });
    const bound = await createKey(a, tenant, { product: 'analytics' });
    const free = await createKey(a, tenant);
    expect(await cacheOn(b, { key: bound.plaintext })).toMatchObject({ valid: true, product: 'analytics' });
    expect(await cacheOn(b, { key: free.plaintext })).toMatchObject({ valid: true, product: null });

    await ok(a, 'POST', `/v1/tenants/${tenant.id}/cancel`);
    const since = Date.now();
    const frozen = await propagation(b, { key: bound.plaintext }, (x) => x.code === 'TENANT_FROZEN', since);
    log(`cancel through A → TENANT_FROZEN on B: ${describePropagation(frozen)}`);
    expect(frozen.sent).toBeLessThan(PROPAGATION_MS);
    expect(await verify(b, { key: free.plaintext })).toStrictEqual(invalid('TENANT_FROZEN'));
  }, 60_000);

  it('a trial started through A turns B\'s cached NOT_ENTITLED valid within 1 s', async (ctx) => {
    ctx.skip(pglite, NO_NOTIFY_ON_PGLITE);
    const tenant = await newTenant(a);
    const key = await createKey(a, tenant, { product: 'automation' });
    expect(await cacheOn(b, { key: key.plaintext })).toStrictEqual(invalid('NOT_ENTITLED'));
    await ok(a, 'POST', '/v1/catalog/trial-request', { tenant_id: tenant.id, product: 'automation' });
    const since = Date.now();
    const entitled = await propagation(b, { key: key.plaintext }, (x) => x.valid === true, since);
    log(`trial through A → valid on B: ${describePropagation(entitled)}`);
    expect(entitled.sent).toBeLessThan(PROPAGATION_MS);
  }, 60_000);

  it('listener connections killed: B serves nothing stale while they are down, and both recover', async (ctx) => {
    ctx.skip(pglite, NO_NOTIFY_ON_PGLITE);
    const tenant = await newTenant(a);
    const [revokedDuring, control, probeDuring, probeAfter, revokedAfter, onA] = [
      await createKey(a, tenant),
      await createKey(a, tenant),
      await createKey(a, tenant),
      await createKey(a, tenant),
      await createKey(a, tenant),
      await createKey(a, tenant),
    ] as Created[] as [Created, Created, Created, Created, Created, Created];
    for (const k of [revokedDuring, control, probeDuring]) {
      expect(await cacheOn(b, { key: k.plaintext })).toMatchObject({ valid: true, key_id: k.api_key.id });
    }

    // Both processes use the same application_name, so every listener backend is killed, and
    // killed again as soon as it reconnects, for as long as the storm lasts.
    const before = await listeners();
    expect(before).toHaveLength(2);
    const killed = new Set<number>(before.map((l) => l.pid));
    let storming = true;
    let kills = 0;
    const storm = (async () => {
      while (storming) {
        const { rows } = await admin.query(
          `SELECT pid, pg_terminate_backend(pid) AS killed FROM pg_stat_activity
            WHERE datname = current_database() AND application_name = $1`,
          [LISTENER],
        );
        for (const row of rows as { pid: number; killed: boolean }[]) {
          if (row.killed) {
            kills++;
            killed.add(row.pid);
          }
        }
        await sleep(15);
      }
    })();
    try {
      // The first listeners are gone (their backends have exited).
      for (const deadline = Date.now() + 5000; ; ) {
        const { rows } = await admin.query('SELECT count(*)::int AS n FROM pg_stat_activity WHERE pid = ANY($1)', [before.map((l) => l.pid)]);
        if (rows[0].n === 0) break;
        if (Date.now() > deadline) throw new Error('the listener backends did not exit');
        await sleep(10);
      }

      // Nothing from the cache while the listener is down: a key revoked behind B's back…
      await silentlyRevoke(probeDuring.api_key.id);
      expect(await verify(b, { key: probeDuring.plaintext }), 'cache unused while the listener is down').toStrictEqual(invalid('REVOKED'));

      // …and a key revoked through A (whose NOTIFY nobody hears) are answered from the database.
      await ok(a, 'DELETE', `/v1/api-keys/${revokedDuring.api_key.id}`);
      const since = Date.now();
      const during: Answer[] = [];
      while (Date.now() - since < 1500) {
        during.push(await verify(b, { key: revokedDuring.plaintext }));
        await sleep(POLL_MS);
      }
      expect(during.filter((x) => x.valid === true), 'B never answers valid for the key revoked during the outage').toEqual([]);
      for (const x of during) expect(x).toStrictEqual(invalid('REVOKED'));
      // B keeps serving (from the database).
      expect(await verify(b, { key: control.plaintext })).toMatchObject({ valid: true, key_id: control.api_key.id });
    } finally {
      storming = false;
      await storm;
    }
    const stormEnded = Date.now();
    expect(kills).toBeGreaterThanOrEqual(2);

    // Both reconnect by themselves.
    const after = await untilListening(2, killed);
    const recoveredIn = Date.now() - stormEnded;
    log(`listener storm: ${kills} backend(s) killed; both listeners back ${recoveredIn} ms after it ended (pids ${after.map((l) => l.pid).join(', ')})`);

    // B caches again (not stuck answering everything cold)…
    expect(await cacheOn(b, { key: probeAfter.plaintext })).toMatchObject({ valid: true });
    await silentlyRevoke(probeAfter.api_key.id);
    expect(await verify(b, { key: probeAfter.plaintext }), 'B answers from its cache again').toMatchObject({ valid: true });
    // …and hears A again.
    expect(await cacheOn(b, { key: revokedAfter.plaintext })).toMatchObject({ valid: true });
    await ok(a, 'DELETE', `/v1/api-keys/${revokedAfter.api_key.id}`);
    const toB = await propagation(b, { key: revokedAfter.plaintext }, (x) => x.code === 'REVOKED', Date.now());
    // A recovered as well: a revoke through B reaches A's cache.
    expect(await cacheOn(a, { key: onA.plaintext })).toMatchObject({ valid: true });
    await ok(b, 'DELETE', `/v1/api-keys/${onA.api_key.id}`);
    const toA = await propagation(a, { key: onA.plaintext }, (x) => x.code === 'REVOKED', Date.now());
    log(`after reconnecting: revoke through A → B ${describePropagation(toB)}; through B → A ${describePropagation(toA)}`);
    expect(toB.sent).toBeLessThan(PROPAGATION_MS);
    expect(toA.sent).toBeLessThan(PROPAGATION_MS);
    // Neither process crashed.
    expect(a.running() && b.running()).toBe(true);
    expect(`${a.stderr()}${b.stderr()}`).not.toMatch(/"level":"(error|fatal)"|unhandled|uncaught/i);
  }, 90_000);

  it('the feed carries only the changes it knows: a foreign payload on the channel changes nothing', async (ctx) => {
    ctx.skip(pglite, NO_NOTIFY_ON_PGLITE);
    const tenant = await newTenant(a);
    const key = await createKey(a, tenant);
    expect(await cacheOn(b, { key: key.plaintext })).toMatchObject({ valid: true });
    for (const payload of ['not json', '{"kind":"api_key"}', JSON.stringify({ kind: 'other', id: randomUUID() }), '[]']) {
      await admin.query('SELECT pg_notify($1, $2)', [CHANGE_CHANNEL, payload]);
    }
    await sleep(200);
    expect(await verify(b, { key: key.plaintext })).toMatchObject({ valid: true, key_id: key.api_key.id });
    expect(b.running()).toBe(true);
  }, 60_000);
});
