/**
 * The audit log over REST, on both stores: POST /v1/audit (defaults, every field's rules,
 * validation that changes nothing) and GET /v1/audit (order, filters and their boundaries,
 * limit, keyset pagination with opaque cursors bound to their filters). Postgres only:
 * deleting a tenant row keeps its events, with tenant_id set to null.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { provisionDatabase, type TestDatabase } from './harness/database.js';
import type { HttpResponse } from './harness/http.js';
import { startServer, type TestServer } from './harness/server.js';
import { eachStore, newTenant } from './harness/each-store.js';

const TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const UUID_LOWER = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const EVENT_KEYS = [
  'action',
  'actor',
  'crud',
  'description',
  'fields',
  'id',
  'is_failure',
  'occurred_at',
  'product',
  'received_at',
  'source_ip',
  'target',
  'tenant_id',
];

type AuditEvent = {
  id: string;
  tenant_id: string | null;
  product: string | null;
  action: string;
  crud: 'c' | 'r' | 'u' | 'd' | null;
  actor: { id: string; name: string | null; type: string };
  target: { id: string; type: string; name: string | null } | null;
  description: string | null;
  source_ip: string | null;
  is_failure: boolean;
  fields: Record<string, string>;
  occurred_at: string;
  received_at: string;
};

/** A whole AuditEvent resource: every field present, lower-case id, millisecond UTC times. */
function expectEvent(res: HttpResponse, status = 201): AuditEvent {
  expect(res.status, res.text.slice(0, 400)).toBe(status);
  expect(res.headers.get('content-type')).toMatch(/^application\/json\b/);
  const e = res.body as AuditEvent;
  expectEventShape(e);
  return e;
}

function expectEventShape(e: AuditEvent) {
  expect(Object.keys(e).sort()).toEqual(EVENT_KEYS);
  expect(e.id).toMatch(UUID_LOWER);
  expect(e.occurred_at).toMatch(TIME);
  expect(e.received_at).toMatch(TIME);
  expect(Object.keys(e.actor).sort()).toEqual(['id', 'name', 'type']);
  if (e.target !== null) expect(Object.keys(e.target).sort()).toEqual(['id', 'name', 'type']);
}

/** An error body with the given status and code; `issues` on validation errors. */
function expectError(res: HttpResponse, status: number, code: string) {
  expect(res.status, res.text.slice(0, 400)).toBe(status);
  const body = res.body as { code: string; message: string; issues?: { path: (string | number)[]; message: string }[] };
  expect(body.code, res.text).toBe(code);
  expect(typeof body.message).toBe('string');
  expect(body.message.length).toBeGreaterThan(0);
  const keys = Object.keys(body).sort();
  if (code === 'BAD_REQUEST') {
    expect(keys).toEqual(['code', 'issues', 'message']);
    expect(Array.isArray(body.issues)).toBe(true);
    expect(body.issues!.length).toBeGreaterThan(0);
    for (const issue of body.issues!) {
      expect(Object.keys(issue).sort()).toEqual(['message', 'path']);
      expect(Array.isArray(issue.path)).toBe(true);
      for (const p of issue.path) expect(['string', 'number']).toContain(typeof p);
      expect(typeof issue.message).toBe('string');
    }
  } else {
    expect(keys).toEqual(['code', 'message']);
  }
  expect(res.text).not.toMatch(/\bat .*\.(ts|js):\d+/); // no stack trace
  return body;
}

/** A validation 400 whose issues include one on exactly `path`. */
function expectIssueOn(res: HttpResponse, path: (string | number)[]) {
  const body = expectError(res, 400, 'BAD_REQUEST');
  expect(body.issues!.map((i) => i.path), res.text).toContainEqual(path);
}

const iso = (ms: number) => new Date(ms).toISOString();
const actorId = (prefix = 'actor') => `${prefix}-${randomBytes(4).toString('hex')}`;
/** The order of GET /v1/audit: (occurred_at desc, id desc). */
const newestFirst = (a: AuditEvent, b: AuditEvent) =>
  Date.parse(b.occurred_at) - Date.parse(a.occurred_at) || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0);
/** A fixed instant well in the past, distinct per call, so tests' events never interleave. */
let epoch = Date.UTC(2024, 0, 1, 0, 0, 0, 0);
const pastBase = () => (epoch += 86_400_000);

eachStore('audit', (server) => {
  const post = (body: unknown, headers?: Record<string, string>) => server().http.post('/v1/audit', body, { headers });
  const get = (query: string | URLSearchParams) => server().http.get(`/v1/audit?${query}`);

  /** Appends one event (201 expected) with the given fields over a minimal valid body. */
  async function append(body: Record<string, unknown>): Promise<AuditEvent> {
    return expectEvent(await post({ action: 'test.event', actor: { id: actorId() }, ...body }));
  }

  /** Every event in the store, counted by following cursors (tests in a file run one at a time). */
  async function totalEvents(): Promise<number> {
    let count = 0;
    let cursor: string | null = null;
    do {
      const q = new URLSearchParams({ limit: '500' });
      if (cursor) q.set('cursor', cursor);
      const res = await get(q);
      expect(res.status, res.text).toBe(200);
      count += res.body.items.length;
      cursor = res.body.next_cursor;
    } while (cursor);
    return count;
  }

  /** Follows next_cursor from the first page to the last, checking every page's shape. */
  async function walk(params: Record<string, string>, limits: number[] | number) {
    const pages: AuditEvent[][] = [];
    const cursors: (string | null)[] = [];
    let cursor: string | null = null;
    do {
      const limit = Array.isArray(limits) ? limits[Math.min(pages.length, limits.length - 1)]! : limits;
      const q = new URLSearchParams({ ...params, limit: String(limit) });
      if (cursor) q.set('cursor', cursor);
      const res = await get(q);
      expect(res.status, res.text).toBe(200);
      expect(Object.keys(res.body).sort()).toEqual(['items', 'next_cursor']);
      const items = res.body.items as AuditEvent[];
      for (const e of items) expectEventShape(e);
      cursor = res.body.next_cursor;
      if (cursor !== null) {
        expect(typeof cursor).toBe('string');
        expect(cursor).toMatch(/^[A-Za-z0-9_-]+$/); // base64url
        expect(items).toHaveLength(limit); // a page is full unless it is the last
      } else {
        expect(items.length).toBeLessThanOrEqual(limit);
      }
      pages.push(items);
      cursors.push(cursor);
      expect(pages.length).toBeLessThan(200); // no endless loop
    } while (cursor);
    if (pages.length > 1) expect(pages[pages.length - 1]!.length).toBeGreaterThan(0); // never a cursor to an empty page
    return { pages, cursors, items: pages.flat() };
  }

  // =====================================================================================
  // POST /v1/audit
  // =====================================================================================

  describe('POST /v1/audit', () => {
    it('answers 201 with the whole event; every optional field is present as null or its default', async () => {
      const before = Date.now();
      const res = await post({ action: 'widget.created', actor: { id: 'svc-1' } });
      const after = Date.now();
      const e = expectEvent(res, 201);
      expect(e).toMatchObject({
        tenant_id: null,
        product: null,
        action: 'widget.created',
        crud: null,
        actor: { id: 'svc-1', name: null, type: 'service' },
        target: null,
        description: null,
        source_ip: '127.0.0.1',
        is_failure: false,
        fields: {},
      });
      // occurred_at defaults to now, and received_at is set by the server.
      for (const t of [e.occurred_at, e.received_at]) {
        expect(Date.parse(t)).toBeGreaterThanOrEqual(before - 1);
        expect(Date.parse(t)).toBeLessThanOrEqual(after + 1);
      }
      expect(e.occurred_at).toBe(e.received_at);
    });

    it('stores exactly what it answered: the query returns the same event', async () => {
      const t = await newTenant(server());
      const e = await append({
        tenant_id: t.id,
        product: 'analytics',
        action: 'report.exported',
        crud: 'r',
        actor: { id: 'user-42', name: 'Ada', type: 'user' },
        target: { id: 'rep-1', type: 'report', name: 'Q3' },
        description: 'Exported the Q3 report',
        source_ip: '203.0.113.7',
        is_failure: true,
        fields: { format: 'csv', rows: '1200' },
        occurred_at: '2025-06-01T10:00:00.000Z',
      });
      expect(e).toMatchObject({
        tenant_id: t.id,
        product: 'analytics',
        action: 'report.exported',
        crud: 'r',
        actor: { id: 'user-42', name: 'Ada', type: 'user' },
        target: { id: 'rep-1', type: 'report', name: 'Q3' },
        description: 'Exported the Q3 report',
        source_ip: '203.0.113.7',
        is_failure: true,
        fields: { format: 'csv', rows: '1200' },
        occurred_at: '2025-06-01T10:00:00.000Z',
      });
      const res = await get(new URLSearchParams({ tenant_id: t.id, action: 'report.exported' }));
      expect(res.status, res.text).toBe(200);
      expect(res.body).toEqual({ items: [e], next_cursor: null });
    });

    it('sets id and received_at itself, ignoring values sent for them', async () => {
      const id = randomUUID();
      const e = await append({ id, received_at: '2020-01-01T00:00:00.000Z', occurred_at: '2025-01-01T00:00:00.000Z' });
      expect(e.id).not.toBe(id);
      expect(e.received_at).not.toBe('2020-01-01T00:00:00.000Z');
      expect(Math.abs(Date.parse(e.received_at) - Date.now())).toBeLessThan(60_000);
      expect(e.occurred_at).toBe('2025-01-01T00:00:00.000Z');
    });

    it('gives every event its own id', async () => {
      const ids = new Set<string>();
      for (let i = 0; i < 5; i++) ids.add((await append({})).id);
      expect(ids.size).toBe(5);
    });

    it('ignores unknown body fields, at the top level and inside actor and target', async () => {
      const e = await append({
        actor: { id: 'svc', bogus: 1 },
        target: { id: 'x', type: 'thing', extra: true },
        colour: 'blue',
        nested: { a: 1 },
      });
      expect(e.actor).toEqual({ id: 'svc', name: null, type: 'service' });
      expect(e.target).toEqual({ id: 'x', type: 'thing', name: null });
      expect(e).not.toHaveProperty('colour');
      expect(e).not.toHaveProperty('nested');
    });

    it('accepts explicit nulls for the optional fields and applies the defaults', async () => {
      const e = await append({
        tenant_id: null,
        product: null,
        crud: null,
        actor: { id: 'svc', name: null, type: null },
        target: null,
        description: null,
        source_ip: null,
        is_failure: null,
        fields: null,
        occurred_at: null,
      });
      expect(e).toMatchObject({
        tenant_id: null,
        product: null,
        crud: null,
        actor: { id: 'svc', name: null, type: 'service' },
        target: null,
        description: null,
        source_ip: '127.0.0.1',
        is_failure: false,
        fields: {},
      });
      expect(Math.abs(Date.parse(e.occurred_at) - Date.now())).toBeLessThan(60_000);
    });

    it('ignores X-Forwarded-For for the default source_ip when no proxy is trusted', async () => {
      const e = expectEvent(await post({ action: 'x.y', actor: { id: 'a' } }, { 'x-forwarded-for': '198.51.100.1' }));
      expect(e.source_ip).toBe('127.0.0.1');
    });

    // ---- action ------------------------------------------------------------------------

    it.each([
      ['a single letter', 'a'],
      ['every allowed character', 'a0_.:-z'],
      ['128 characters', `a${'b'.repeat(127)}`],
      ['a dotted name', 'api_key.created'],
      ['a namespaced name', 'billing:invoice.paid'],
    ])('accepts an action of %s', async (_, action) => {
      expect((await append({ action })).action).toBe(action);
    });

    it.each([
      ['upper-case letters', 'Tenant.created'],
      ['an upper-case letter inside', 'tenant.Created'],
      ['a leading digit', '1tenant'],
      ['a leading dot', '.tenant'],
      ['a leading underscore', '_tenant'],
      ['129 characters', `a${'b'.repeat(128)}`],
      ['nothing at all', ''],
      ['a space', 'tenant created'],
      ['a slash', 'tenant/created'],
      ['a non-ASCII letter', 'tenant.créé'],
      ['surrounding white space', ' tenant.created '],
      ['a number', 42],
      ['null', null],
    ])('refuses an action with %s', async (_, action) => {
      expectIssueOn(await post({ action, actor: { id: 'a' } }), ['action']);
    });

    it('requires action and actor.id', async () => {
      expectIssueOn(await post({ actor: { id: 'a' } }), ['action']);
      expectIssueOn(await post({ action: 'a.b' }), ['actor']);
      expectIssueOn(await post({ action: 'a.b', actor: {} }), ['actor', 'id']);
      expectIssueOn(await post({ action: 'a.b', actor: null }), ['actor']);
      expectIssueOn(await post({ action: 'a.b', actor: 'svc' }), ['actor']);
      expectIssueOn(await post({ action: 'a.b', actor: { id: 7 } }), ['actor', 'id']);
    });

    it('refuses a body that is not a JSON object', async () => {
      const json = { headers: { 'content-type': 'application/json' } };
      for (const raw of ['[]', 'null', '"text"', '42', '{}']) {
        expectError(await server().http.post('/v1/audit', raw, json), 400, 'BAD_REQUEST');
      }
    });

    // ---- actor ---------------------------------------------------------------------------

    it('accepts an actor.id of 1 and of 200 code points (400 UTF-16 units), kept as sent', async () => {
      expect((await append({ actor: { id: 'x' } })).actor.id).toBe('x');
      const long = '😀'.repeat(200);
      expect((await append({ actor: { id: long } })).actor.id).toBe(long);
      // Identifiers are not trimmed.
      expect((await append({ actor: { id: ' padded ' } })).actor.id).toBe(' padded ');
    });

    it('refuses an actor.id that is empty or longer than 200 code points', async () => {
      expectIssueOn(await post({ action: 'a.b', actor: { id: '' } }), ['actor', 'id']);
      expectIssueOn(await post({ action: 'a.b', actor: { id: '😀'.repeat(201) } }), ['actor', 'id']);
      expectIssueOn(await post({ action: 'a.b', actor: { id: 'i'.repeat(201) } }), ['actor', 'id']);
    });

    it.each(['user', 'service', 'api_key', 'system'])('accepts actor.type %s', async (type) => {
      expect((await append({ actor: { id: 'a', type } })).actor.type).toBe(type);
    });

    it.each(['admin', 'User', 'SERVICE', '', 1, true])('refuses actor.type %j', async (type) => {
      expectIssueOn(await post({ action: 'a.b', actor: { id: 'a', type } }), ['actor', 'type']);
    });

    it('stores actor.name trimmed, and an empty one as null', async () => {
      expect((await append({ actor: { id: 'a', name: '  Ada Lovelace \n' } })).actor.name).toBe('Ada Lovelace');
      expect((await append({ actor: { id: 'a', name: '   ' } })).actor.name).toBeNull();
    });

    // ---- crud --------------------------------------------------------------------------

    it.each(['c', 'r', 'u', 'd'])('accepts crud %s', async (crud) => {
      expect((await append({ crud })).crud).toBe(crud);
    });

    it.each(['C', 'x', 'create', '', 'cr', 1])('refuses crud %j', async (crud) => {
      expectIssueOn(await post({ action: 'a.b', actor: { id: 'a' }, crud }), ['crud']);
    });

    // ---- target ------------------------------------------------------------------------

    it('accepts a target with id and type; its name defaults to null', async () => {
      expect((await append({ target: { id: 't-1', type: 'invoice' } })).target).toEqual({ id: 't-1', type: 'invoice', name: null });
      expect((await append({ target: { id: 't-1', type: 'invoice', name: 'INV-1' } })).target).toEqual({
        id: 't-1',
        type: 'invoice',
        name: 'INV-1',
      });
      const long = '😀'.repeat(200);
      expect((await append({ target: { id: long, type: long } })).target).toMatchObject({ id: long, type: long });
    });

    it('refuses a target without id or type, or with empty or over-long ones', async () => {
      const bad = (target: unknown) => post({ action: 'a.b', actor: { id: 'a' }, target });
      expectIssueOn(await bad({ type: 'invoice' }), ['target', 'id']);
      expectIssueOn(await bad({ id: 't-1' }), ['target', 'type']);
      expectIssueOn(await bad({}), ['target', 'id']);
      expectIssueOn(await bad({ id: '', type: 'invoice' }), ['target', 'id']);
      expectIssueOn(await bad({ id: 't', type: '' }), ['target', 'type']);
      expectIssueOn(await bad({ id: 'i'.repeat(201), type: 'invoice' }), ['target', 'id']);
      expectIssueOn(await bad({ id: 't', type: 'y'.repeat(201) }), ['target', 'type']);
      expectIssueOn(await bad('invoice:1'), ['target']);
    });

    // ---- description -------------------------------------------------------------------

    it('stores the description trimmed; empty after trimming is null', async () => {
      expect((await append({ description: '  \tDid a thing. \n' })).description).toBe('Did a thing.');
      expect((await append({ description: '' })).description).toBeNull();
      expect((await append({ description: ' \n\t\u00a0 ' })).description).toBeNull();
    });

    it('accepts a description of 2000 code points (counted after trimming)', async () => {
      const d = '😀'.repeat(2000);
      expect((await append({ description: d })).description).toBe(d);
      const plain = 'd'.repeat(2000);
      expect((await append({ description: `   ${plain}   ` })).description).toBe(plain);
    });

    it('refuses a description longer than 2000 code points, or not a string', async () => {
      expectIssueOn(await post({ action: 'a.b', actor: { id: 'a' }, description: '😀'.repeat(2001) }), ['description']);
      expectIssueOn(await post({ action: 'a.b', actor: { id: 'a' }, description: 'd'.repeat(2001) }), ['description']);
      expectIssueOn(await post({ action: 'a.b', actor: { id: 'a' }, description: 5 }), ['description']);
    });

    // ---- source_ip ---------------------------------------------------------------------

    it.each(['10.0.0.1', '255.255.255.255', '2001:db8::1', '::1', 'fe80::1ff:fe23:4567:890a'])(
      'accepts source_ip %s',
      async (ip) => {
        expect((await append({ source_ip: ip })).source_ip).toBe(ip);
      },
    );

    it.each(['not-an-ip', '256.1.1.1', '10.0.0', '10.0.0.1/24', 'example.com', '2001:db8:::1', '', 12345])(
      'refuses source_ip %j',
      async (ip) => {
        expectIssueOn(await post({ action: 'a.b', actor: { id: 'a' }, source_ip: ip }), ['source_ip']);
      },
    );

    // ---- is_failure --------------------------------------------------------------------

    it('accepts is_failure as a JSON boolean', async () => {
      expect((await append({ is_failure: true })).is_failure).toBe(true);
      expect((await append({ is_failure: false })).is_failure).toBe(false);
    });

    it.each(['true', 'false', 1, 0, 'yes'])('refuses is_failure %j (not a JSON boolean)', async (v) => {
      expectIssueOn(await post({ action: 'a.b', actor: { id: 'a' }, is_failure: v }), ['is_failure']);
    });

    // ---- fields ------------------------------------------------------------------------

    it('accepts 50 fields, a 40-character key and a 500-character value', async () => {
      const fields: Record<string, string> = {};
      for (let i = 0; i < 49; i++) fields[`k${i}`] = `v${i}`;
      fields['k'.repeat(40)] = 'v'.repeat(500);
      const e = await append({ fields });
      expect(e.fields).toEqual(fields);
      const cp = await append({ fields: { ['😀'.repeat(40)]: '😀'.repeat(500), empty: '' } });
      expect(cp.fields).toEqual({ ['😀'.repeat(40)]: '😀'.repeat(500), empty: '' });
    });

    it('refuses 51 fields, a 41-character key or a 501-character value', async () => {
      const many: Record<string, string> = {};
      for (let i = 0; i < 51; i++) many[`k${i}`] = 'v';
      expectIssueOn(await post({ action: 'a.b', actor: { id: 'a' }, fields: many }), ['fields']);
      const longKey = await post({ action: 'a.b', actor: { id: 'a' }, fields: { ['k'.repeat(41)]: 'v' } });
      expectError(longKey, 400, 'BAD_REQUEST');
      expect(longKey.body.issues[0].path[0]).toBe('fields');
      expectIssueOn(await post({ action: 'a.b', actor: { id: 'a' }, fields: { k: 'v'.repeat(501) } }), ['fields', 'k']);
      expectIssueOn(await post({ action: 'a.b', actor: { id: 'a' }, fields: { k: '😀'.repeat(501) } }), ['fields', 'k']);
    });

    it.each([
      ['a number', { n: 1 }],
      ['a boolean', { b: true }],
      ['null', { z: null }],
      ['an object', { o: { a: 'b' } }],
      ['an array', { a: ['x'] }],
    ])('refuses a field value that is %s', async (_, fields) => {
      const res = await post({ action: 'a.b', actor: { id: 'a' }, fields });
      expectIssueOn(res, ['fields', Object.keys(fields)[0]!]);
    });

    it('refuses fields that are not an object', async () => {
      expectIssueOn(await post({ action: 'a.b', actor: { id: 'a' }, fields: ['a'] }), ['fields']);
      expectIssueOn(await post({ action: 'a.b', actor: { id: 'a' }, fields: 'a=b' }), ['fields']);
    });

    // ---- product -----------------------------------------------------------------------

    it('accepts a product that matches the pattern, in the catalog or not', async () => {
      expect((await append({ product: 'analytics' })).product).toBe('analytics');
      expect((await append({ product: 'internal-tools' })).product).toBe('internal-tools');
      expect((await append({ product: 'not-in-catalog' })).product).toBe('not-in-catalog');
      expect((await append({ product: `p${'1'.repeat(39)}` })).product).toBe(`p${'1'.repeat(39)}`);
    });

    it.each(['Analytics', 'a', '1product', '-prod', 'prod_uct', `p${'x'.repeat(40)}`, '', 7])(
      'refuses product %j',
      async (product) => {
        expectIssueOn(await post({ action: 'a.b', actor: { id: 'a' }, product }), ['product']);
      },
    );

    // ---- tenant_id ---------------------------------------------------------------------

    it('accepts an existing tenant_id in any letter case and returns it lower-case', async () => {
      const t = await newTenant(server());
      expect((await append({ tenant_id: t.id })).tenant_id).toBe(t.id);
      expect((await append({ tenant_id: t.id.toUpperCase() })).tenant_id).toBe(t.id);
    });

    it('answers 404 for a tenant_id that does not exist, and records nothing', async () => {
      const before = await totalEvents();
      const res = await post({ action: 'a.b', actor: { id: 'a' }, tenant_id: randomUUID() });
      expectError(res, 404, 'NOT_FOUND');
      expect(await totalEvents()).toBe(before);
    });

    it.each(['nope', '12345', '00000000000000000000000000000001', '{00000000-0000-0000-0000-000000000001}', 'g0000000-0000-0000-0000-000000000001', 1])(
      'refuses a malformed tenant_id %j with 400',
      async (tenantId) => {
        expectIssueOn(await post({ action: 'a.b', actor: { id: 'a' }, tenant_id: tenantId }), ['tenant_id']);
      },
    );

    it('answers 400 before 404: a bad field with an unknown tenant is a validation error', async () => {
      expectIssueOn(await post({ action: 'Bad', actor: { id: 'a' }, tenant_id: randomUUID() }), ['action']);
    });

    // ---- occurred_at -------------------------------------------------------------------

    it.each([
      ['Z', '2026-01-02T03:04:05.123Z', '2026-01-02T03:04:05.123Z'],
      ['a positive offset, truncated past milliseconds', '2026-01-02T03:04:05.123987+02:00', '2026-01-02T01:04:05.123Z'],
      ['a negative offset across midnight', '2026-01-01T22:30:00-05:30', '2026-01-02T04:00:00.000Z'],
      ['no fraction', '2025-12-31T23:59:59Z', '2025-12-31T23:59:59.000Z'],
      ['one fractional digit', '2025-12-31T23:59:59.5Z', '2025-12-31T23:59:59.500Z'],
      ['nine fractional digits (truncated, not rounded)', '2025-12-31T23:59:59.999999999Z', '2025-12-31T23:59:59.999Z'],
      ['lower-case t and z', '2025-03-04t05:06:07.008z', '2025-03-04T05:06:07.008Z'],
      ['+00:00', '2025-03-04T05:06:07+00:00', '2025-03-04T05:06:07.000Z'],
      ['-00:00', '2025-03-04T05:06:07-00:00', '2025-03-04T05:06:07.000Z'],
      ['a leap day', '2024-02-29T12:00:00Z', '2024-02-29T12:00:00.000Z'],
    ])('accepts occurred_at with %s, normalised to UTC milliseconds', async (_, sent, stored) => {
      const t = await newTenant(server());
      const e = await append({ tenant_id: t.id, occurred_at: sent });
      expect(e.occurred_at).toBe(stored);
      // The stored value is the normalised one too.
      const res = await get(new URLSearchParams({ tenant_id: t.id, action: 'test.event' }));
      expect(res.body.items.map((x: AuditEvent) => x.occurred_at)).toEqual([stored]);
    });

    it.each([
      ['no offset', '2026-01-02T03:04:05.123'],
      ['a date only', '2026-01-02'],
      ['a space instead of T', '2026-01-02 03:04:05Z'],
      ['an offset without a colon', '2026-01-02T03:04:05+0200'],
      ['an hour-only offset', '2026-01-02T03:04:05+02'],
      ['month 13', '2026-13-02T03:04:05Z'],
      ['February 30', '2026-02-30T03:04:05Z'],
      ['February 29 of a common year', '2025-02-29T03:04:05Z'],
      ['hour 24', '2026-01-02T24:00:00Z'],
      ['a trailing dot', '2026-01-02T03:04:05.Z'],
      ['a Unix timestamp string', '1767323045'],
      ['a number', 1767323045000],
      ['free text', 'yesterday'],
      ['an empty string', ''],
      ['year 0000 (Postgres has none)', '0000-06-01T00:00:00Z'],
    ])('refuses occurred_at with %s', async (_, occurredAt) => {
      expectIssueOn(await post({ action: 'a.b', actor: { id: 'a' }, occurred_at: occurredAt }), ['occurred_at']);
    });

    it('accepts occurred_at 4 minutes in the future, and refuses it more than 5 minutes ahead', async () => {
      const soon = iso(Date.now() + 4 * 60_000);
      expect((await append({ occurred_at: soon })).occurred_at).toBe(soon);
      const before = await totalEvents();
      expectIssueOn(await post({ action: 'a.b', actor: { id: 'a' }, occurred_at: iso(Date.now() + 5 * 60_000 + 15_000) }), ['occurred_at']);
      expectIssueOn(await post({ action: 'a.b', actor: { id: 'a' }, occurred_at: iso(Date.now() + 86_400_000) }), ['occurred_at']);
      // The same instant, written with an offset, is judged by the instant.
      const far = new Date(Date.now() + 10 * 60_000);
      const withOffset = `${iso(far.getTime() + 2 * 3_600_000).slice(0, 23)}+02:00`;
      expectIssueOn(await post({ action: 'a.b', actor: { id: 'a' }, occurred_at: withOffset }), ['occurred_at']);
      expect(await totalEvents()).toBe(before);
    });

    it('accepts occurred_at long in the past', async () => {
      expect((await append({ occurred_at: '1999-12-31T23:59:59.999Z' })).occurred_at).toBe('1999-12-31T23:59:59.999Z');
    });

    // ---- text the stores cannot keep ---------------------------------------------------

    it.each([
      ['actor.id', { actor: { id: 'a\u0000b' } }, ['actor', 'id']],
      ['actor.name', { actor: { id: 'a', name: 'x\u0000y' } }, ['actor', 'name']],
      ['target.id', { target: { id: 'a\u0000', type: 't' } }, ['target', 'id']],
      ['target.type', { target: { id: 'a', type: '\ud800' } }, ['target', 'type']],
      ['description', { description: 'bad \u0000 text' }, ['description']],
      ['description (lone surrogate)', { description: 'bad \udc00 text' }, ['description']],
      ['a fields value', { fields: { k: 'a\u0000b' } }, ['fields', 'k']],
      ['a fields value (lone surrogate)', { fields: { k: 'a\ud800b' } }, ['fields', 'k']],
      ['a fields key', { fields: { 'k\u0000': 'v' } }, ['fields']],
    ])('refuses a NUL or an unpaired surrogate in %s with 400 (never a 500)', async (_, patch, path) => {
      const t = await newTenant(server());
      const res = await post({ tenant_id: t.id, action: 'a.b', actor: { id: 'a' }, ...patch });
      const body = expectError(res, 400, 'BAD_REQUEST');
      expect(body.issues!.map((i) => i.path[0]), res.text).toContain(path[0]);
      if (path.length > 1 && path[0] !== 'fields') expectIssueOn(res, path);
      expect((await get(new URLSearchParams({ tenant_id: t.id, action: 'a.b' }))).body.items).toEqual([]);
    });

    it('keeps astral characters and other unusual but valid text exactly', async () => {
      const text = 'emoji 😀, CJK 漢字, RTL עברית, combining e\u0301, tab\tinside';
      const e = await append({ actor: { id: text, name: text }, description: text, fields: { [text.slice(0, 20)]: text } });
      expect(e.actor).toMatchObject({ id: text, name: text });
      expect(e.description).toBe(text);
      expect(e.fields).toEqual({ [text.slice(0, 20)]: text });
      const res = await get(new URLSearchParams({ actor_id: text }));
      expect(res.body.items).toEqual([e]);
    });

    // ---- rejections change nothing -----------------------------------------------------

    it('changes nothing on any validation error', async () => {
      const t = await newTenant(server());
      const base = { tenant_id: t.id, action: 'valid.action', actor: { id: 'a' } };
      const tenantEvents = async () => (await get(new URLSearchParams({ tenant_id: t.id, limit: '500' }))).body.items.length;
      const beforeTenant = await tenantEvents();
      const beforeAll_ = await totalEvents();
      const bad: Record<string, unknown>[] = [
        { action: 'Upper' },
        { actor: { id: '' } },
        { actor: { id: 'a', type: 'robot' } },
        { crud: 'x' },
        { target: { id: 'x' } },
        { description: 'd'.repeat(2001) },
        { source_ip: 'nope' },
        { is_failure: 'true' },
        { fields: { n: 1 } },
        { product: 'Bad' },
        { occurred_at: '2026-01-02T03:04:05' },
        { occurred_at: iso(Date.now() + 3_600_000) },
      ];
      for (const patch of bad) {
        expectError(await post({ ...base, ...patch }), 400, 'BAD_REQUEST');
      }
      expect(await tenantEvents()).toBe(beforeTenant);
      expect(await totalEvents()).toBe(beforeAll_);
    });
  });

  // =====================================================================================
  // GET /v1/audit
  // =====================================================================================

  describe('GET /v1/audit', () => {
    it('lists newest first by occurred_at, whatever the order of appending', async () => {
      const t = await newTenant(server());
      const base = pastBase();
      const offsets = [5, 1, 9, 3, 7, 0, 8, 2, 6, 4];
      const made: AuditEvent[] = [];
      for (const o of offsets) made.push(await append({ tenant_id: t.id, action: 'order.test', occurred_at: iso(base + o * 1000) }));
      const res = await get(new URLSearchParams({ tenant_id: t.id, action: 'order.test' }));
      expect(res.status, res.text).toBe(200);
      expect(res.body.next_cursor).toBeNull();
      expect(res.body.items.map((e: AuditEvent) => e.occurred_at)).toEqual(offsets.map((o) => iso(base + o * 1000)).sort().reverse());
      expect(res.body.items).toEqual([...made].sort(newestFirst));
    });

    it('breaks ties on occurred_at by id, descending, and a tenant-only filter includes its automatic events', async () => {
      const t = await newTenant(server());
      const at = iso(pastBase());
      const made: AuditEvent[] = [];
      for (let i = 0; i < 6; i++) made.push(await append({ tenant_id: t.id, occurred_at: at }));
      const res = await get(new URLSearchParams({ tenant_id: t.id }));
      expect(res.status, res.text).toBe(200);
      const items = res.body.items as AuditEvent[];
      // tenant.created is newest (it happened now); the six share one instant, by id desc.
      expect(items).toHaveLength(7);
      expect(items[0]!.action).toBe('tenant.created');
      expect(items.slice(1).map((e) => e.id)).toEqual(made.map((e) => e.id).sort().reverse());
    });

    it('returns an empty page for filters that match nothing', async () => {
      const res = await get(new URLSearchParams({ tenant_id: randomUUID() }));
      expect(res.status, res.text).toBe(200);
      expect(res.body).toEqual({ items: [], next_cursor: null });
    });

    it('accepts the tenant_id filter in any letter case', async () => {
      const t = await newTenant(server());
      const e = await append({ tenant_id: t.id, action: 'case.test' });
      const res = await get(new URLSearchParams({ tenant_id: t.id.toUpperCase(), action: 'case.test' }));
      expect(res.status, res.text).toBe(200);
      expect(res.body.items).toEqual([e]);
    });

    it('filters by tenant_id, product, actor_id and action, alone and combined', async () => {
      const [t1, t2] = [await newTenant(server()), await newTenant(server())];
      const base = pastBase();
      const actorA = actorId('a');
      const actorB = actorId('b');
      const rows = [
        { tenant_id: t1.id, product: 'analytics', actor: { id: actorA }, action: 'f.one' },
        { tenant_id: t1.id, product: 'analytics', actor: { id: actorB }, action: 'f.two' },
        { tenant_id: t1.id, product: 'automation', actor: { id: actorA }, action: 'f.two' },
        { tenant_id: t1.id, product: null, actor: { id: actorA }, action: 'f.one' },
        { tenant_id: t2.id, product: 'analytics', actor: { id: actorA }, action: 'f.one' },
        { tenant_id: t2.id, product: 'automation', actor: { id: actorB }, action: 'f.two' },
      ];
      const made: AuditEvent[] = [];
      for (const [i, r] of rows.entries()) made.push(await append({ ...r, occurred_at: iso(base + i * 1000) }));
      const expectMatch = async (params: Record<string, string>, pick: (e: AuditEvent) => boolean) => {
        const res = await get(new URLSearchParams(params));
        expect(res.status, res.text).toBe(200);
        const want = made.filter(pick).sort(newestFirst);
        expect(res.body.items, JSON.stringify(params)).toEqual(want);
        expect(want.length).toBeGreaterThan(0);
      };
      const mine = (e: AuditEvent) => e.tenant_id === t1.id || e.tenant_id === t2.id;
      await expectMatch({ tenant_id: t1.id, actor_id: actorA }, (e) => e.tenant_id === t1.id && e.actor.id === actorA);
      await expectMatch({ tenant_id: t1.id, action: 'f.two' }, (e) => e.tenant_id === t1.id && e.action === 'f.two');
      await expectMatch({ tenant_id: t1.id, product: 'analytics' }, (e) => e.tenant_id === t1.id && e.product === 'analytics');
      await expectMatch({ actor_id: actorA }, (e) => e.actor.id === actorA);
      await expectMatch({ actor_id: actorB, action: 'f.two' }, (e) => e.actor.id === actorB && e.action === 'f.two');
      await expectMatch({ actor_id: actorA, product: 'analytics' }, (e) => e.actor.id === actorA && e.product === 'analytics');
      await expectMatch(
        { tenant_id: t2.id, product: 'automation', actor_id: actorB, action: 'f.two' },
        (e) => e.tenant_id === t2.id && e.product === 'automation' && e.actor.id === actorB && e.action === 'f.two',
      );
      await expectMatch({ tenant_id: t2.id, action: 'f.one' }, (e) => mine(e) && e.tenant_id === t2.id && e.action === 'f.one');
      // No match at all.
      const none = await get(new URLSearchParams({ tenant_id: t2.id, actor_id: actorA, action: 'f.two' }));
      expect(none.body).toEqual({ items: [], next_cursor: null });
    });

    it('treats filter values as exact matches, not patterns or prefixes', async () => {
      const t = await newTenant(server());
      const actor = actorId('exact');
      await append({ tenant_id: t.id, actor: { id: actor }, action: 'exact.match', product: 'analytics' });
      for (const params of [
        { tenant_id: t.id, action: 'exact' },
        { tenant_id: t.id, action: 'exact.matc' },
        { tenant_id: t.id, product: 'analytic' },
        { tenant_id: t.id, actor_id: actor.slice(0, -1) },
        { tenant_id: t.id, actor_id: `${actor}%` },
        { tenant_id: t.id, actor_id: actor.toUpperCase() },
      ] as Record<string, string>[]) {
        const res = await get(new URLSearchParams(params));
        expect(res.status, res.text).toBe(200);
        expect(res.body.items, JSON.stringify(params)).toEqual([]);
      }
    });

    it('filters actor_id with characters that need URL encoding', async () => {
      const t = await newTenant(server());
      const actor = `user:${randomBytes(2).toString('hex')} ✓ & = + ?/😀`;
      const e = await append({ tenant_id: t.id, actor: { id: actor } });
      const res = await get(new URLSearchParams({ tenant_id: t.id, actor_id: actor }));
      expect(res.status, res.text).toBe(200);
      expect(res.body.items).toEqual([e]);
    });

    it('keeps since inclusive and until exclusive, at exact millisecond boundaries', async () => {
      const t = await newTenant(server());
      const base = pastBase();
      const made: AuditEvent[] = [];
      for (let ms = 0; ms < 6; ms++) made.push(await append({ tenant_id: t.id, action: 'window', occurred_at: iso(base + ms) }));
      const at = (ms: number) => made.find((e) => e.occurred_at === iso(base + ms))!;
      const window = async (params: Record<string, string>) => {
        const res = await get(new URLSearchParams({ tenant_id: t.id, action: 'window', ...params }));
        expect(res.status, res.text).toBe(200);
        return (res.body.items as AuditEvent[]).map((e) => e.id);
      };
      expect(await window({ since: iso(base + 2) })).toEqual([5, 4, 3, 2].map((m) => at(m).id));
      expect(await window({ until: iso(base + 2) })).toEqual([1, 0].map((m) => at(m).id));
      expect(await window({ since: iso(base + 1), until: iso(base + 4) })).toEqual([3, 2, 1].map((m) => at(m).id));
      expect(await window({ since: iso(base + 3), until: iso(base + 4) })).toEqual([at(3).id]);
      // since == until is an empty window, not an error.
      expect(await window({ since: iso(base + 3), until: iso(base + 3) })).toEqual([]);
      // Times in queries take any offset and are truncated to milliseconds before comparing.
      const plus2 = (ms: number) => `${iso(base + ms + 2 * 3_600_000).slice(0, 23)}+02:00`;
      expect(await window({ since: plus2(4) })).toEqual([5, 4].map((m) => at(m).id));
      const sub = (ms: number) => `${iso(base + ms).slice(0, 23)}999Z`; // e.g. …00.002999Z → …00.002Z
      expect(await window({ since: sub(2), until: sub(4) })).toEqual([3, 2].map((m) => at(m).id));
      expect(await window({ since: iso(base + 2).replace('T', 't').replace('Z', 'z') })).toEqual([5, 4, 3, 2].map((m) => at(m).id));
    });

    it('accepts the widest window, from year 0001 to year 9999', async () => {
      const t = await newTenant(server());
      const old = await append({ tenant_id: t.id, action: 'wide', occurred_at: '0001-01-01T00:00:00.000Z' });
      const recent = await append({ tenant_id: t.id, action: 'wide' });
      const res = await get(
        new URLSearchParams({ tenant_id: t.id, action: 'wide', since: '0001-01-01T00:00:00Z', until: '9999-12-31T23:59:59.999Z' }),
      );
      expect(res.status, res.text).toBe(200);
      expect(res.body.items).toEqual([recent, old]);
    });

    it('refuses since later than until', async () => {
      const base = pastBase();
      expectIssueOn(await get(new URLSearchParams({ since: iso(base + 1), until: iso(base) })), ['since']);
    });

    it('defaults limit to 50', async () => {
      const t = await newTenant(server());
      const base = pastBase();
      await Promise.all(Array.from({ length: 52 }, (_, i) => append({ tenant_id: t.id, action: 'lots', occurred_at: iso(base + i) })));
      const first = await get(new URLSearchParams({ tenant_id: t.id, action: 'lots' }));
      expect(first.status, first.text).toBe(200);
      expect(first.body.items).toHaveLength(50);
      expect(first.body.next_cursor).toEqual(expect.any(String));
      const second = await get(new URLSearchParams({ tenant_id: t.id, action: 'lots', cursor: first.body.next_cursor }));
      expect(second.body.items).toHaveLength(2);
      expect(second.body.next_cursor).toBeNull();
      expect(second.body.items.map((e: AuditEvent) => e.occurred_at)).toEqual([iso(base + 1), iso(base)]);
    });

    it('accepts limit 1 and 500', async () => {
      const t = await newTenant(server());
      const base = pastBase();
      for (let i = 0; i < 3; i++) await append({ tenant_id: t.id, action: 'lim', occurred_at: iso(base + i) });
      const one = await get(new URLSearchParams({ tenant_id: t.id, action: 'lim', limit: '1' }));
      expect(one.status, one.text).toBe(200);
      expect(one.body.items).toHaveLength(1);
      expect(one.body.items[0].occurred_at).toBe(iso(base + 2));
      expect(one.body.next_cursor).toEqual(expect.any(String));
      const max = await get(new URLSearchParams({ tenant_id: t.id, action: 'lim', limit: '500' }));
      expect(max.status, max.text).toBe(200);
      expect(max.body.items).toHaveLength(3);
      expect(max.body.next_cursor).toBeNull();
    });

    it.each(['0', '501', '-1', '1.5', 'abc', '1e2', '0x10', ' 5', 'Infinity', 'NaN', '99999999999999999999'])(
      'refuses limit=%s',
      async (limit) => {
        const res = await server().http.get(`/v1/audit?limit=${encodeURIComponent(limit)}`);
        expectIssueOn(res, ['limit']);
      },
    );

    it.each([
      ['an action filter that breaks the pattern', 'action=Tenant.created', 'action'],
      ['an action filter with a leading digit', 'action=1abc', 'action'],
      ['an action filter of 129 characters', `action=a${'b'.repeat(128)}`, 'action'],
      ['an empty action filter', 'action=', 'action'],
      ['a product filter that breaks the pattern', 'product=Analytics', 'product'],
      ['a one-letter product filter', 'product=a', 'product'],
      ['an empty product filter', 'product=', 'product'],
      ['a malformed tenant_id', 'tenant_id=nope', 'tenant_id'],
      ['a tenant_id without hyphens', 'tenant_id=00000000000000000000000000000001', 'tenant_id'],
      ['an empty tenant_id', 'tenant_id=', 'tenant_id'],
      ['an empty actor_id', 'actor_id=', 'actor_id'],
      ['an actor_id of 201 characters', `actor_id=${'a'.repeat(201)}`, 'actor_id'],
      ['a since without an offset', 'since=2026-01-01T00:00:00', 'since'],
      ['a since that is a date', 'since=2026-01-01', 'since'],
      ['an until that is not a time', 'until=tomorrow', 'until'],
      ['an until on February 30', 'until=2026-02-30T00:00:00Z', 'until'],
      ['an empty since', 'since=', 'since'],
      ['an empty cursor', 'cursor=', 'cursor'],
      ['an empty limit', 'limit=', 'limit'],
    ])('refuses %s', async (_, query, path) => {
      expectIssueOn(await server().http.get(`/v1/audit?${query}`), [path]);
    });

    it.each([
      ['limit', 'limit=5&limit=6'],
      ['limit (same value)', 'limit=5&limit=5'],
      ['tenant_id', `tenant_id=${randomUUID()}&tenant_id=${randomUUID()}`],
      ['action', 'action=a.b&action=c.d'],
      ['actor_id', 'actor_id=a&actor_id=b'],
      ['product', 'product=analytics&product=automation'],
      ['since', 'since=2026-01-01T00:00:00Z&since=2026-01-02T00:00:00Z'],
    ])('refuses a duplicated %s key', async (_, query) => {
      expectError(await server().http.get(`/v1/audit?${query}`), 400, 'BAD_REQUEST');
    });

    it('refuses an offset-less since/until even when the other is valid', async () => {
      expectIssueOn(await get(new URLSearchParams({ since: '2026-01-01T00:00:00Z', until: '2026-01-02T00:00:00' })), ['until']);
    });

    // ---- keyset pagination -------------------------------------------------------------

    it('follows next_cursor through 23 events with limit 5: each once, in order, full pages, null at the end', async () => {
      const t = await newTenant(server());
      const base = pastBase();
      const made = await Promise.all(
        Array.from({ length: 23 }, (_, i) => append({ tenant_id: t.id, action: 'page.test', occurred_at: iso(base + i * 1000) })),
      );
      const { pages, cursors, items } = await walk({ tenant_id: t.id, action: 'page.test' }, 5);
      expect(pages.map((p) => p.length)).toEqual([5, 5, 5, 5, 3]);
      expect(cursors.slice(0, -1).every((c) => typeof c === 'string')).toBe(true);
      expect(cursors.at(-1)).toBeNull();
      expect(new Set(cursors.slice(0, -1)).size).toBe(4);
      expect(items).toEqual([...made].sort(newestFirst));
    });

    it('answers next_cursor null when the results exactly fill the page', async () => {
      const t = await newTenant(server());
      const base = pastBase();
      for (let i = 0; i < 10; i++) await append({ tenant_id: t.id, action: 'exact.fill', occurred_at: iso(base + i) });
      const one = await get(new URLSearchParams({ tenant_id: t.id, action: 'exact.fill', limit: '10' }));
      expect(one.body.items).toHaveLength(10);
      expect(one.body.next_cursor).toBeNull();
      const { pages } = await walk({ tenant_id: t.id, action: 'exact.fill' }, 5);
      expect(pages.map((p) => p.length)).toEqual([5, 5]);
    });

    it('visits every event sharing one occurred_at across pages (ties broken by id)', async () => {
      const t = await newTenant(server());
      const base = pastBase();
      const made: AuditEvent[] = [];
      // Seven events at one instant, surrounded by one newer and one older.
      made.push(await append({ tenant_id: t.id, action: 'tie', occurred_at: iso(base + 1000) }));
      for (let i = 0; i < 7; i++) made.push(await append({ tenant_id: t.id, action: 'tie', occurred_at: iso(base) }));
      made.push(await append({ tenant_id: t.id, action: 'tie', occurred_at: iso(base - 1000) }));
      for (const limit of [1, 2, 3, 4]) {
        const { items } = await walk({ tenant_id: t.id, action: 'tie' }, limit);
        expect(items.map((e) => e.id), `limit ${limit}`).toEqual([...made].sort(newestFirst).map((e) => e.id));
      }
    });

    it('lets limit change between pages', async () => {
      const t = await newTenant(server());
      const base = pastBase();
      const made: AuditEvent[] = [];
      for (let i = 0; i < 12; i++) made.push(await append({ tenant_id: t.id, action: 'var.limit', occurred_at: iso(base + i) }));
      const { pages, items } = await walk({ tenant_id: t.id, action: 'var.limit' }, [2, 5, 1, 500]);
      expect(pages.map((p) => p.length)).toEqual([2, 5, 1, 4]);
      expect(items).toEqual([...made].sort(newestFirst));
    });

    it('pages within since/until windows and with several filters', async () => {
      const t = await newTenant(server());
      const base = pastBase();
      const actor = actorId('pager');
      const made: AuditEvent[] = [];
      for (let i = 0; i < 20; i++) {
        made.push(
          await append({
            tenant_id: t.id,
            action: i % 2 ? 'odd' : 'even',
            actor: { id: actor },
            product: 'analytics',
            occurred_at: iso(base + i * 10),
          }),
        );
      }
      const params = { tenant_id: t.id, actor_id: actor, product: 'analytics', action: 'even', since: iso(base + 20), until: iso(base + 170) };
      const { items } = await walk(params, 3);
      const want = made.filter((e) => e.action === 'even' && Date.parse(e.occurred_at) >= base + 20 && Date.parse(e.occurred_at) < base + 170);
      expect(want).toHaveLength(8); // 20, 40, …, 160
      expect(items).toEqual(want.sort(newestFirst));
    });

    it('neither repeats nor skips events while new ones are appended between pages', async () => {
      const t = await newTenant(server());
      const base = Date.now() - 3_600_000;
      const made = await Promise.all(
        Array.from({ length: 17 }, (_, i) => append({ tenant_id: t.id, action: 'live', occurred_at: iso(base + i * 1000) })),
      );
      const params = { tenant_id: t.id, action: 'live' };
      const seen: AuditEvent[] = [];
      let cursor: string | null = null;
      let page = 0;
      do {
        const q = new URLSearchParams({ ...params, limit: '4' });
        if (cursor) q.set('cursor', cursor);
        const res = await get(q);
        expect(res.status, res.text).toBe(200);
        seen.push(...res.body.items);
        cursor = res.body.next_cursor;
        // Newer events (occurred_at now) arrive while the client pages through the older ones.
        for (let i = 0; i < 3; i++) await append({ tenant_id: t.id, action: 'live' });
        page++;
      } while (cursor);
      expect(page).toBe(5);
      const ids = seen.map((e) => e.id);
      expect(new Set(ids).size).toBe(ids.length); // no duplicates
      expect(seen).toEqual([...made].sort(newestFirst)); // none of the originals skipped, in order
      // A fresh walk sees the newcomers too.
      const all = await walk(params, 50);
      expect(all.items).toHaveLength(17 + 15);
    });

    it('a back-dated event appended mid-walk, older than the cursor, is visited exactly once', async () => {
      const t = await newTenant(server());
      const base = pastBase();
      const made: AuditEvent[] = [];
      for (let i = 1; i <= 8; i++) made.push(await append({ tenant_id: t.id, action: 'backdated', occurred_at: iso(base + i * 1000) }));
      const first = await get(new URLSearchParams({ tenant_id: t.id, action: 'backdated', limit: '3' }));
      expect(first.body.items).toHaveLength(3);
      const late = await append({ tenant_id: t.id, action: 'backdated', occurred_at: iso(base) });
      const seen: AuditEvent[] = [...first.body.items];
      let cursor: string | null = first.body.next_cursor;
      while (cursor) {
        const res = await get(new URLSearchParams({ tenant_id: t.id, action: 'backdated', limit: '3', cursor }));
        expect(res.status, res.text).toBe(200);
        seen.push(...res.body.items);
        cursor = res.body.next_cursor;
      }
      expect(seen).toEqual([...made, late].sort(newestFirst));
    });

    // ---- cursors -----------------------------------------------------------------------

    it('refuses a cursor used with different filters', async () => {
      const t = await newTenant(server());
      const other = await newTenant(server());
      const base = pastBase();
      for (let i = 0; i < 4; i++) await append({ tenant_id: t.id, action: 'bound', product: 'analytics', occurred_at: iso(base + i) });
      const params = { tenant_id: t.id, action: 'bound', since: iso(base - 10_000) };
      const first = await get(new URLSearchParams({ ...params, limit: '2' }));
      const cursor = first.body.next_cursor as string;
      expect(cursor).toEqual(expect.any(String));
      const variants: Record<string, string>[] = [
        { action: 'bound' }, // a filter dropped
        { ...params, tenant_id: other.id }, // another tenant
        { ...params, action: 'bound.other' }, // another action
        { ...params, product: 'analytics' }, // a filter added
        { ...params, actor_id: 'someone' },
        { ...params, since: iso(base - 9_999) }, // another window
        { ...params, until: iso(base + 10_000) },
        {}, // no filters at all
      ];
      for (const v of variants) {
        const res = await get(new URLSearchParams({ ...v, limit: '2', cursor }));
        expectIssueOn(res, ['cursor']);
      }
      // With its own filters (and another limit) it still works.
      const ok = await get(new URLSearchParams({ ...params, limit: '5', cursor }));
      expect(ok.status, ok.text).toBe(200);
      expect(ok.body.items).toHaveLength(2);
      expect(ok.body.next_cursor).toBeNull();
    });

    it('treats the same filters written differently as the same filters', async () => {
      const t = await newTenant(server());
      const base = pastBase();
      for (let i = 0; i < 4; i++) await append({ tenant_id: t.id, action: 'same', occurred_at: iso(base + i) });
      const since = iso(base - 1000);
      const first = await get(new URLSearchParams({ tenant_id: t.id, action: 'same', since, limit: '2' }));
      const cursor = first.body.next_cursor as string;
      // Upper-case tenant id, the same instant with an offset, parameters in another order.
      const sinceWithOffset = `${iso(base - 1000 + 3_600_000).slice(0, 23)}+01:00`;
      const res = await server().http.get(
        `/v1/audit?cursor=${cursor}&limit=2&since=${encodeURIComponent(sinceWithOffset)}&action=same&tenant_id=${t.id.toUpperCase()}`,
      );
      expect(res.status, res.text).toBe(200);
      expect(res.body.items.map((e: AuditEvent) => e.occurred_at)).toEqual([iso(base + 1), iso(base)]);
      expect(res.body.next_cursor).toBeNull();
    });

    it.each([
      ['garbage', '!!!not-a-cursor!!!'],
      ['base64url of nothing useful', 'abc'],
      ['base64url of {}', Buffer.from('{}').toString('base64url')],
      ['base64url of null', Buffer.from('null').toString('base64url')],
      ['base64url of an array', Buffer.from('[1,2]').toString('base64url')],
      ['base64url of non-JSON text', Buffer.from('hello world').toString('base64url')],
      ['a position with a bad id', Buffer.from(JSON.stringify({ t: 0, i: 'nope', f: 'x' })).toString('base64url')],
      ['a position with a string time', Buffer.from(JSON.stringify({ t: 'now', i: randomUUID(), f: 'x' })).toString('base64url')],
      ['a position with a fractional time', Buffer.from(JSON.stringify({ t: 1.5, i: randomUUID(), f: 'x' })).toString('base64url')],
      ['a uuid', randomUUID()],
      ['a very long string', 'A'.repeat(5000)],
    ])('refuses a cursor that is %s', async (_, cursor) => {
      expectIssueOn(await get(new URLSearchParams({ cursor })), ['cursor']);
    });

    it('refuses a truncated or altered cursor', async () => {
      const t = await newTenant(server());
      const base = pastBase();
      for (let i = 0; i < 3; i++) await append({ tenant_id: t.id, action: 'trunc', occurred_at: iso(base + i) });
      const params = { tenant_id: t.id, action: 'trunc', limit: '1' };
      const cursor = (await get(new URLSearchParams(params))).body.next_cursor as string;
      expect(cursor.length).toBeGreaterThan(10);
      for (const bad of [cursor.slice(0, -1), cursor.slice(0, -4), cursor.slice(0, cursor.length >> 1), cursor.slice(1), `${cursor}A`, `${cursor}==`]) {
        expectIssueOn(await get(new URLSearchParams({ ...params, cursor: bad })), ['cursor']);
      }
      // A decoded cursor whose filter fingerprint was edited.
      const decoded = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
      const forged = Buffer.from(JSON.stringify({ ...decoded, f: 'AAAAAAAAAAAAAAAA' })).toString('base64url');
      expectIssueOn(await get(new URLSearchParams({ ...params, cursor: forged })), ['cursor']);
    });

    it('changes nothing when reads are refused', async () => {
      const before = await totalEvents();
      await get('limit=0');
      await get('cursor=garbage');
      await get('action=BAD');
      expect(await totalEvents()).toBe(before);
    });
  });
});

// =========================================================================================
// Postgres only: the tenant row is deleted in SQL, the history stays.
// =========================================================================================

describe('audit events outlive their tenant [postgres store]', () => {
  let db: TestDatabase | undefined;
  let server: TestServer | undefined;
  let sql: pg.Client | undefined;

  beforeAll(async () => {
    db = await provisionDatabase();
    server = await startServer('postgres', { databaseUrl: db.url });
    sql = new pg.Client({ connectionString: db.url });
    await sql.connect();
  }, 120_000);

  afterAll(async () => {
    await sql?.end();
    await server?.close();
    await db?.drop();
  }, 60_000);

  it('sets tenant_id to null when the tenant row is deleted, and keeps every event', async () => {
    const s = server!;
    const t = await newTenant(s);
    const other = await newTenant(s);
    const actor = actorId('survivor');
    const made: AuditEvent[] = [];
    for (let i = 0; i < 3; i++) {
      made.push(expectEvent(await s.http.post('/v1/audit', { tenant_id: t.id, action: 'kept.event', actor: { id: actor }, occurred_at: iso(Date.UTC(2025, 0, 1) + i) })));
    }
    const kept = expectEvent(await s.http.post('/v1/audit', { tenant_id: other.id, action: 'kept.event', actor: { id: actor } }));

    const deleted = await sql!.query('DELETE FROM tenants WHERE id = $1', [t.id]);
    expect(deleted.rowCount).toBe(1);

    // The events are all there, with tenant_id null and everything else unchanged.
    const res = await s.http.get(`/v1/audit?${new URLSearchParams({ actor_id: actor })}`);
    expect(res.status, res.text).toBe(200);
    const items = res.body.items as AuditEvent[];
    expect(items).toHaveLength(4);
    const byId = new Map(items.map((e) => [e.id, e]));
    for (const e of made) expect(byId.get(e.id)).toEqual({ ...e, tenant_id: null });
    expect(byId.get(kept.id)).toEqual(kept);

    // The automatic tenant.created event of the deleted tenant survives too.
    const rows = await sql!.query(
      `SELECT count(*)::int AS n FROM audit_log WHERE action = 'tenant.created' AND target_id = $1 AND tenant_id IS NULL`,
      [t.id],
    );
    expect(rows.rows[0].n).toBe(1);

    // A filter on the deleted tenant now matches nothing; the other tenant is untouched.
    expect((await s.http.get(`/v1/audit?tenant_id=${t.id}`)).body).toEqual({ items: [], next_cursor: null });
    const others = await s.http.get(`/v1/audit?${new URLSearchParams({ tenant_id: other.id, action: 'kept.event' })}`);
    expect(others.body.items).toEqual([kept]);

    // Appending to the deleted tenant is now 404.
    const late = await s.http.post('/v1/audit', { tenant_id: t.id, action: 'kept.event', actor: { id: actor } });
    expectError(late, 404, 'NOT_FOUND');
  });

  it('declares audit_log.tenant_id ON DELETE SET NULL in the schema', async () => {
    const res = await sql!.query(
      `SELECT rc.delete_rule
         FROM information_schema.referential_constraints rc
         JOIN information_schema.key_column_usage k ON k.constraint_name = rc.constraint_name
        WHERE k.table_name = 'audit_log' AND k.column_name = 'tenant_id'`,
    );
    expect(res.rows.map((r) => r.delete_rule)).toEqual(['SET NULL']);
  });
});
