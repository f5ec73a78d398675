/**
 * Real concurrency, on both stores (the Postgres one a freshly migrated database with a pool
 * of 10 connections, so requests overlap inside the database): many requests racing for
 * one state change make exactly one change and exactly one audit event, and the losers get
 * the 409 a sequential caller would get. Audit pagination visits every event once while
 * appends land concurrently.
 *
 * On PGlite (no TEST_DATABASE_URL and no Docker) the requests go one after another instead
 * (see tests/harness/single-session.ts): the same outcomes are checked, without the race.
 */
import { beforeAll, expect, it } from 'vitest';
import type { PostgresStore } from '../src/db/postgres-store.js';
import type { HttpResponse } from './harness/http.js';
import type { StoreKind, TestServer } from './harness/server.js';
import { auditOf, eachStore, newTenant, randomSlug } from './harness/each-store.js';
import { fire, onPglite } from './harness/single-session.js';

/** Fires `n` copies of a request at once (in turn when `serial`) and tallies the statuses. */
async function race(n: number, send: (i: number) => Promise<HttpResponse>, serial: boolean) {
  const responses = await fire(n, send, serial);
  const statuses: Record<number, number> = {};
  for (const r of responses) statuses[r.status] = (statuses[r.status] ?? 0) + 1;
  return { responses, statuses };
}

/** Every loser's body is a CONFLICT error whose message matches `message`. */
function expectConflicts(responses: HttpResponse[], message: RegExp) {
  for (const r of responses.filter((x) => x.status === 409)) {
    expect(r.body, r.text).toEqual({ code: 'CONFLICT', message: expect.stringMatching(message) });
  }
}

/** Rows in Postgres, straight from the table (null on the memory store). */
async function countRows(server: TestServer, kind: StoreKind, sql: string, params: unknown[]): Promise<number | null> {
  if (kind !== 'postgres') return null;
  const { rows } = await (server.store as PostgresStore).pool.query<{ n: string }>(sql, params);
  return Number(rows[0]!.n);
}

eachStore('races', (t, kind) => {
  let serial = false;
  beforeAll(async () => {
    serial = await onPglite(t());
  });

  it('50 concurrent creates of one slug: one 201, 49 × 409, one tenant.created event', async () => {
    const slug = randomSlug('race');
    const { responses, statuses } = await race(50, () => t().http.post('/v1/tenants', { slug, name: 'Racer' }), serial);
    expect(statuses).toEqual({ 201: 1, 409: 49 });
    expectConflicts(responses, new RegExp(`slug "${slug}" is already taken`));
    const winner = responses.find((r) => r.status === 201)!.body;
    const bySlug = await t().http.get(`/v1/tenants/by-slug/${slug}`);
    expect(bySlug.body.id).toBe(winner.id);
    expect(await auditOf(t(), winner.id, 'tenant.created')).toHaveLength(1);
    expect(await countRows(t(), kind, 'SELECT count(*) AS n FROM tenants WHERE slug = $1', [slug])).toBe(kind === 'postgres' ? 1 : null);
    expect(
      await countRows(t(), kind, `SELECT count(*) AS n FROM audit_log WHERE action = 'tenant.created' AND target_name = $1`, [slug]),
    ).toBe(kind === 'postgres' ? 1 : null);
  });

  it('20 concurrent trial requests: one 201, one entitlement, one trial_started event', async () => {
    const tenant = await newTenant(t());
    const { responses, statuses } = await race(20, () =>
      t().http.post('/v1/catalog/trial-request', { tenant_id: tenant.id, product: 'analytics' }), serial,
    );
    expect(statuses).toEqual({ 201: 1, 409: 19 });
    expectConflicts(responses, /already had an entitlement to "analytics"/);
    const entitlements = await t().http.get(`/v1/entitlements?tenant_id=${tenant.id}`);
    expect(entitlements.body.items).toHaveLength(1);
    expect(entitlements.body.items[0].id).toBe(responses.find((r) => r.status === 201)!.body.id);
    expect(await auditOf(t(), tenant.id, 'entitlement.trial_started')).toHaveLength(1);
  });

  it('20 concurrent activates: one 200, 19 × 409, one tenant.activated event', async () => {
    const tenant = await newTenant(t());
    const { responses, statuses } = await race(20, () => t().http.post(`/v1/tenants/${tenant.id}/activate`), serial);
    expect(statuses).toEqual({ 200: 1, 409: 19 });
    expectConflicts(responses, /status is "active"/);
    expect((await t().http.get(`/v1/tenants/${tenant.id}`)).body.status).toBe('active');
    expect(await auditOf(t(), tenant.id, 'tenant.activated')).toHaveLength(1);
  });

  it('20 concurrent cancels of an active tenant: one 200, 19 × 409, one tenant.canceled event', async () => {
    const tenant = await newTenant(t(), { status: 'active' });
    const { responses, statuses } = await race(20, () => t().http.post(`/v1/tenants/${tenant.id}/cancel`), serial);
    expect(statuses).toEqual({ 200: 1, 409: 19 });
    expectConflicts(responses, /status is "frozen"/);
    expect((await t().http.get(`/v1/tenants/${tenant.id}`)).body.status).toBe('frozen');
    expect(await auditOf(t(), tenant.id, 'tenant.canceled')).toHaveLength(1);
  });

  it('20 concurrent revokes of one key: all 200 with one revoked_at, one api_key.revoked event', async () => {
    const tenant = await newTenant(t(), { status: 'active' });
    const created = await t().http.post('/v1/api-keys', { tenant_id: tenant.id, name: 'racer' });
    expect(created.status, created.text).toBe(201);
    const id = created.body.api_key.id as string;
    const { responses, statuses } = await race(20, () => t().http.delete(`/v1/api-keys/${id}`), serial);
    expect(statuses).toEqual({ 200: 20 });
    const revokedAt = new Set(responses.map((r) => r.body.revoked_at));
    expect(revokedAt.size).toBe(1);
    expect([...revokedAt][0]).toEqual(expect.any(String));
    expect(await auditOf(t(), tenant.id, 'api_key.revoked')).toHaveLength(1);
    const listed = await t().http.get(`/v1/api-keys?tenant_id=${tenant.id}&include_revoked=true`);
    expect(listed.body.items.map((k: { revoked_at: string }) => k.revoked_at)).toEqual([...revokedAt]);
  });

  it('20 concurrent catalog requests: one 201, 19 × 409 (pending), one catalog.requested event', async () => {
    const tenant = await newTenant(t());
    const { responses, statuses } = await race(20, () =>
      t().http.post('/v1/catalog/request', { tenant_id: tenant.id, product: 'automation', note: 'race' }), serial,
    );
    expect(statuses).toEqual({ 201: 1, 409: 19 });
    expectConflicts(responses, /a request for "automation" is already pending/);
    expect(await auditOf(t(), tenant.id, 'catalog.requested')).toHaveLength(1);
    expect(
      await countRows(t(), kind, `SELECT count(*) AS n FROM product_requests WHERE tenant_id = $1 AND product = 'automation'`, [tenant.id]),
    ).toBe(kind === 'postgres' ? 1 : null);
  });

  it('a mixed race on one tenant (activate, cancel, trial, request, key) keeps one event per change', async () => {
    const tenant = await newTenant(t());
    const sends = [
      ...Array.from({ length: 8 }, () => () => t().http.post(`/v1/tenants/${tenant.id}/activate`)),
      ...Array.from({ length: 8 }, () => () => t().http.post('/v1/catalog/trial-request', { tenant_id: tenant.id, product: 'compliance' })),
      ...Array.from({ length: 8 }, () => () => t().http.post('/v1/catalog/request', { tenant_id: tenant.id, product: 'compliance' })),
    ];
    const responses = await fire(sends.length, (i) => sends[i]!(), serial);
    const ok = (from: number) => responses.slice(from, from + 8).filter((r) => r.status < 300).length;
    expect([ok(0), ok(8), ok(16)]).toEqual([1, 1, 1]);
    for (const r of responses.filter((x) => x.status >= 300)) expect(r.status, r.text).toBe(409);
    const events = await auditOf(t(), tenant.id);
    const count = (action: string) => events.filter((e) => e.action === action).length;
    expect([count('tenant.activated'), count('entitlement.trial_started'), count('catalog.requested')]).toEqual([1, 1, 1]);
  });

  it('audit pagination while events are appended concurrently: each pre-existing event exactly once', async () => {
    const tenant = await newTenant(t());
    // 60 older events sharing only three timestamps (the id breaks the ties), one with sub-ms digits.
    const base = Date.now() - 60 * 60_000;
    const times = [new Date(base).toISOString(), new Date(base + 1).toISOString(), '2020-01-01T00:00:00.123456Z'];
    const preexisting = new Set<string>([(await auditOf(t(), tenant.id))[0].id]);
    for (let batch = 0; batch < 6; batch++) {
      const made = await Promise.all(
        Array.from({ length: 10 }, (_, i) =>
          t().http.post('/v1/audit', {
            tenant_id: tenant.id,
            action: 'race.before',
            actor: { id: 'race-test' },
            occurred_at: times[(batch * 10 + i) % 3],
          }),
        ),
      );
      for (const r of made) {
        expect(r.status, r.text).toBe(201);
        preexisting.add(r.body.id);
      }
    }
    expect(preexisting.size).toBe(61);

    const appended = new Set<string>();
    /** Three appends: at "now" (implicitly and explicitly) and backdated into the timestamps being paged through. */
    const appendRound = async (round: number) => {
      const bodies = [
        { tenant_id: tenant.id, action: 'race.during', actor: { id: 'race-test' } },
        { tenant_id: tenant.id, action: 'race.during', actor: { id: 'race-test' }, occurred_at: new Date().toISOString() },
        { tenant_id: tenant.id, action: 'race.during', actor: { id: 'race-test' }, occurred_at: times[round % 3] },
      ];
      const made = await fire(bodies.length, (i) => t().http.post('/v1/audit', bodies[i]), serial);
      for (const r of made) {
        expect(r.status, r.text).toBe(201);
        appended.add(r.body.id);
      }
    };
    const seen: string[] = [];
    /** Follows the cursors to the end, running `between` after every page. */
    const paginate = async (between: (page: number) => Promise<void>) => {
      let cursor: string | null = null;
      let pages = 0;
      do {
        const q = new URLSearchParams({ tenant_id: tenant.id, limit: '4' });
        if (cursor) q.set('cursor', cursor);
        const page = await t().http.get(`/v1/audit?${q}`);
        expect(page.status, page.text).toBe(200);
        seen.push(...page.body.items.map((e: { id: string }) => e.id));
        cursor = page.body.next_cursor;
        pages++;
        expect(pages).toBeLessThan(200);
        await between(pages);
      } while (cursor);
    };
    if (serial) {
      // One session: appends land between the pages, never during one.
      await paginate((page) => appendRound(page));
    } else {
      let paginating = true;
      const appender = async () => {
        for (let round = 0; (paginating && round < 40) || round < 3; round++) await appendRound(round);
      };
      const paginator = () => paginate(async () => undefined).finally(() => (paginating = false));
      await Promise.all([paginator(), appender()]);
    }

    expect(appended.size).toBeGreaterThanOrEqual(9);
    expect(new Set(seen).size).toBe(seen.length); // nothing twice
    for (const id of preexisting) expect(seen.filter((s) => s === id), id).toHaveLength(1);
    for (const id of seen) expect(preexisting.has(id) || appended.has(id)).toBe(true);
    // Backdated appends that landed behind the cursor are seen; the walk is keyset-ordered.
    const all = await auditOf(t(), tenant.id);
    expect(all).toHaveLength(preexisting.size + appended.size);
    const order = all.map((e) => e.id);
    const positions = seen.map((id) => order.indexOf(id));
    expect(positions).toEqual([...positions].sort((a, b) => a - b));
  });

  it('concurrent key creation for one tenant while it is canceled: no key issued after the cancel commits', async () => {
    const tenant = await newTenant(t(), { status: 'active' });
    const createKey = (i: number) => t().http.post('/v1/api-keys', { tenant_id: tenant.id, name: `k${i}` });
    const cancelTenant = () => t().http.post(`/v1/tenants/${tenant.id}/cancel`);
    let cancel: HttpResponse;
    let keys: HttpResponse[];
    if (serial) {
      const first = await createKey(0);
      cancel = await cancelTenant();
      keys = [first, ...(await fire(7, (i) => createKey(i + 1), true))];
    } else {
      // The keys go first (each costs an argon2 run, so they queue up); the cancel goes as soon
      // as the first key is issued, while the others are still being hashed.
      const keyRequests = Array.from({ length: 8 }, (_, i) => createKey(i));
      cancel = await Promise.race(keyRequests).then(cancelTenant);
      keys = await Promise.all(keyRequests);
    }
    expect(cancel.status, cancel.text).toBe(200);
    for (const r of keys) expect([201, 409], r.text).toContain(r.status);
    expectConflicts(keys, /^tenant is frozen$/);
    const issued = keys.filter((r) => r.status === 201).map((r) => r.body.api_key.id as string);
    expect(issued.length).toBeGreaterThanOrEqual(1);
    const listed = await t().http.get(`/v1/api-keys?tenant_id=${tenant.id}`);
    expect(listed.body.items.map((k: { id: string }) => k.id).sort()).toEqual([...issued].sort());
    const events = await auditOf(t(), tenant.id);
    expect(events.filter((e) => e.action === 'api_key.created')).toHaveLength(issued.length);
    // Every key event is older than the cancel event (the tenant row lock orders them).
    const canceledAt = events.find((e) => e.action === 'tenant.canceled')!.occurred_at;
    for (const e of events.filter((x) => x.action === 'api_key.created')) expect(e.occurred_at <= canceledAt).toBe(true);
  });
});
