/**
 * The typed tRPC client (src/client.ts) against the running server over HTTP, on both
 * stores: every procedure once, plus the error shapes a portal sees.
 */
import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { createRegistryClient, isTRPCClientError, TRPCClientError, type AppRouter, type RegistryClient } from '../src/index.js';
import { requestHeaders } from '../src/client.js';
import { eachStore, randomSlug } from './harness/each-store.js';

const TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** The TRPCClientError a call rejects with (fails the test when it resolves). */
async function rejection(call: Promise<unknown>): Promise<TRPCClientError<AppRouter>> {
  try {
    await call;
  } catch (err) {
    expect(isTRPCClientError(err)).toBe(true);
    return err as TRPCClientError<AppRouter>;
  }
  throw new Error('expected the call to fail');
}

/** What every client error must look like: a code, a status, and nothing internal. */
function expectCleanError(err: TRPCClientError<AppRouter>, code: string, httpStatus: number) {
  expect(err).toBeInstanceOf(TRPCClientError);
  expect(err.data?.code).toBe(code);
  expect(err.data?.httpStatus).toBe(httpStatus);
  expect((err.data as Record<string, unknown>).stack).toBeUndefined();
  expect(JSON.stringify(err.shape)).not.toMatch(/\bat .*\.(ts|js):\d+/);
  expect(typeof err.message).toBe('string');
}

eachStore('typed client', (server) => {
  let client: RegistryClient;
  const c = () => (client ??= createRegistryClient({ url: server().url }));

  async function tenant(status: 'trial' | 'active' | 'frozen' = 'trial') {
    let t = await c().tenants.create.mutate({ slug: randomSlug('c'), name: 'Client tenant' });
    if (status !== 'trial') t = await c().tenants.activate.mutate({ id: t.id });
    if (status === 'frozen') t = await c().tenants.cancel.mutate({ id: t.id });
    return t;
  }

  describe('tenants', () => {
    it('create returns the new tenant in trial, snake_case', async () => {
      const slug = randomSlug('c');
      const t = await c().tenants.create.mutate({ slug, name: '  Client tenant  ' });
      expect(t).toEqual({
        id: expect.stringMatching(UUID),
        slug,
        name: 'Client tenant',
        status: 'trial',
        created_at: expect.stringMatching(TIME),
        updated_at: expect.stringMatching(TIME),
      });
    });

    it('get and bySlug read it back; an upper-case id works', async () => {
      const t = await tenant();
      expect(await c().tenants.get.query({ id: t.id })).toEqual(t);
      expect(await c().tenants.get.query({ id: t.id.toUpperCase() })).toEqual(t);
      expect(await c().tenants.bySlug.query({ slug: t.slug })).toEqual(t);
    });

    it('activate and cancel move trial → active → frozen', async () => {
      const t = await tenant();
      const active = await c().tenants.activate.mutate({ id: t.id });
      expect(active).toMatchObject({ id: t.id, status: 'active' });
      const frozen = await c().tenants.cancel.mutate({ id: t.id });
      expect(frozen).toMatchObject({ id: t.id, status: 'frozen' });
      expect((await c().tenants.get.query({ id: t.id })).status).toBe('frozen');
    });

    it('a wrong transition is CONFLICT 409 naming the current status', async () => {
      const t = await tenant();
      const err = await rejection(c().tenants.cancel.mutate({ id: t.id }));
      expectCleanError(err, 'CONFLICT', 409);
      expect(err.message).toContain('trial');
    });

    it('a taken slug is CONFLICT 409', async () => {
      const t = await tenant();
      const err = await rejection(c().tenants.create.mutate({ slug: t.slug, name: 'Again' }));
      expectCleanError(err, 'CONFLICT', 409);
    });
  });

  describe('catalog and entitlements', () => {
    it('catalog.list returns the requestable products by key', async () => {
      const { items } = await c().catalog.list.query({});
      expect(items.map((p) => p.key)).toEqual(['analytics', 'automation', 'compliance', 'enterprise-sso']);
      expect(items[0]).toEqual({
        key: 'analytics',
        name: 'Analytics',
        description: expect.any(String),
        requestable: true,
        trial_days: 14,
      });
    });

    it('catalog.request creates a pending request (note trimmed; empty note is null)', async () => {
      const t = await tenant();
      const r = await c().catalog.request.mutate({ tenant_id: t.id, product: 'analytics', note: '  call me  ' });
      expect(r).toEqual({
        id: expect.stringMatching(UUID),
        tenant_id: t.id,
        product: 'analytics',
        status: 'pending',
        note: 'call me',
        created_at: expect.stringMatching(TIME),
      });
      const r2 = await c().catalog.request.mutate({ tenant_id: t.id, product: 'automation', note: '   ' });
      expect(r2.note).toBeNull();
      const again = await rejection(c().catalog.request.mutate({ tenant_id: t.id, product: 'analytics' }));
      expectCleanError(again, 'CONFLICT', 409);
    });

    it('catalog.trialRequest starts a 14-day trial that entitlements.list reports', async () => {
      const t = await tenant();
      const e = await c().catalog.trialRequest.mutate({ tenant_id: t.id, product: 'compliance' });
      expect(e).toEqual({
        id: expect.stringMatching(UUID),
        tenant_id: t.id,
        product: 'compliance',
        status: 'trial',
        source: 'trial',
        starts_at: expect.stringMatching(TIME),
        expires_at: expect.stringMatching(TIME),
        created_at: expect.stringMatching(TIME),
        updated_at: expect.stringMatching(TIME),
      });
      expect(Date.parse(e.expires_at!) - Date.parse(e.starts_at)).toBe(14 * 86_400_000);
      const { items } = await c().entitlements.list.query({ tenant_id: t.id });
      expect(items).toEqual([e]);
    });

    it('a product that is not requestable is NOT_FOUND for trials', async () => {
      const t = await tenant();
      const err = await rejection(c().catalog.trialRequest.mutate({ tenant_id: t.id, product: 'internal-tools' }));
      expectCleanError(err, 'NOT_FOUND', 404);
    });

    it('entitlements.list of an unknown tenant is NOT_FOUND', async () => {
      const err = await rejection(c().entitlements.list.query({ tenant_id: randomUUID() }));
      expectCleanError(err, 'NOT_FOUND', 404);
    });
  });

  describe('API keys', () => {
    it('create → list → verify → revoke → verify', async () => {
      const t = await tenant('active');
      await c().catalog.trialRequest.mutate({ tenant_id: t.id, product: 'analytics' });
      const created = await c().apiKeys.create.mutate({
        tenant_id: t.id,
        name: '  ingest  ',
        product: 'analytics',
        scopes: ['events:write', 'events:write', 'events:read'],
      });
      expect(created.plaintext).toMatch(/^bp_[A-Za-z0-9_-]{22}$/);
      expect(created.api_key).toEqual({
        id: expect.stringMatching(UUID),
        tenant_id: t.id,
        name: 'ingest',
        prefix: created.plaintext.slice(0, 11),
        product: 'analytics',
        scopes: ['events:write', 'events:read'],
        created_at: expect.stringMatching(TIME),
        expires_at: null,
        last_used_at: null,
        revoked_at: null,
      });
      expect(created.api_key).not.toHaveProperty('hash');

      const listed = await c().apiKeys.list.query({ tenant_id: t.id });
      expect(listed.items).toEqual([created.api_key]);

      const ok = await c().apiKeys.verify.mutate({ key: created.plaintext });
      expect(ok).toEqual({
        valid: true,
        key_id: created.api_key.id,
        tenant_id: t.id,
        tenant_slug: t.slug,
        product: 'analytics',
        scopes: ['events:write', 'events:read'],
        expires_at: null,
      });
      expect(await c().apiKeys.verify.mutate({ key: created.plaintext, product: 'automation' })).toEqual({
        valid: false,
        code: 'NOT_ENTITLED',
      });
      expect(await c().apiKeys.verify.mutate({ key: 'nope' })).toEqual({ valid: false, code: 'MALFORMED' });

      const revoked = await c().apiKeys.revoke.mutate({ id: created.api_key.id });
      expect(revoked).toMatchObject({ id: created.api_key.id, revoked_at: expect.stringMatching(TIME) });
      const twice = await c().apiKeys.revoke.mutate({ id: created.api_key.id.toUpperCase() });
      expect(twice).toEqual(revoked);
      expect(await c().apiKeys.verify.mutate({ key: created.plaintext })).toEqual({ valid: false, code: 'REVOKED' });

      expect((await c().apiKeys.list.query({ tenant_id: t.id })).items).toEqual([]);
      expect((await c().apiKeys.list.query({ tenant_id: t.id, include_revoked: 'true' })).items).toEqual([revoked]);
    });

    it('an API key for a frozen tenant is CONFLICT; for an unknown product NOT_FOUND', async () => {
      const frozen = await tenant('frozen');
      expectCleanError(await rejection(c().apiKeys.create.mutate({ tenant_id: frozen.id, name: 'k' })), 'CONFLICT', 409);
      const t = await tenant();
      expectCleanError(
        await rejection(c().apiKeys.create.mutate({ tenant_id: t.id, name: 'k', product: 'no-such-product' })),
        'NOT_FOUND',
        404,
      );
    });

    it('revoking an unknown key is NOT_FOUND', async () => {
      expectCleanError(await rejection(c().apiKeys.revoke.mutate({ id: randomUUID() })), 'NOT_FOUND', 404);
    });
  });

  describe('audit', () => {
    it('append returns the event with defaults; query finds it', async () => {
      const t = await tenant();
      const ev = await c().audit.append.mutate({
        tenant_id: t.id,
        product: 'analytics',
        action: 'report.exported',
        actor: { id: 'user-1' },
        fields: { format: 'csv' },
        occurred_at: '2026-01-31T13:00:00.123456+01:00',
      });
      expect(ev).toEqual({
        id: expect.stringMatching(UUID),
        tenant_id: t.id,
        product: 'analytics',
        action: 'report.exported',
        crud: null,
        actor: { id: 'user-1', name: null, type: 'service' },
        target: null,
        description: null,
        source_ip: expect.any(String),
        is_failure: false,
        fields: { format: 'csv' },
        occurred_at: '2026-01-31T12:00:00.123Z',
        received_at: expect.stringMatching(TIME),
      });

      const page = await c().audit.query.query({ tenant_id: t.id, action: 'report.exported' });
      expect(page).toEqual({ items: [ev], next_cursor: null });
    });

    it('the automatic events of client calls are in the log, newest first, with keyset pages', async () => {
      const t = await tenant('active');
      const all = await c().audit.query.query({ tenant_id: t.id });
      expect(all.items.map((e) => e.action)).toEqual(['tenant.activated', 'tenant.created']);
      expect(all.next_cursor).toBeNull();

      const first = await c().audit.query.query({ tenant_id: t.id, limit: 1 });
      expect(first.items).toEqual([all.items[0]]);
      expect(first.next_cursor).toEqual(expect.any(String));
      const second = await c().audit.query.query({ tenant_id: t.id, limit: 1, cursor: first.next_cursor! });
      expect(second).toEqual({ items: [all.items[1]], next_cursor: null });
    });

    it('a bad cursor is BAD_REQUEST', async () => {
      expectCleanError(await rejection(c().audit.query.query({ cursor: 'not-a-cursor' })), 'BAD_REQUEST', 400);
    });
  });

  describe('errors through the client', () => {
    it('a missing tenant is a TRPCClientError with data.code NOT_FOUND and httpStatus 404', async () => {
      const err = await rejection(c().tenants.get.query({ id: randomUUID() }));
      expectCleanError(err, 'NOT_FOUND', 404);
      expect(err.data?.path).toBe('tenants.get');
      expect(err.data?.issues).toBeUndefined();
      expect(err.message).toMatch(/not found/i);

      const bySlug = await rejection(c().tenants.bySlug.query({ slug: randomSlug('missing') }));
      expectCleanError(bySlug, 'NOT_FOUND', 404);
    });

    it('a validation error is BAD_REQUEST 400 with issues [{path, message}]', async () => {
      const err = await rejection(c().tenants.create.mutate({ slug: 'Not A Slug', name: '   ' }));
      expectCleanError(err, 'BAD_REQUEST', 400);
      const issues = err.data?.issues;
      expect(Array.isArray(issues)).toBe(true);
      for (const issue of issues!) {
        expect(Object.keys(issue).sort()).toEqual(['message', 'path']);
        expect(Array.isArray(issue.path)).toBe(true);
        expect(typeof issue.message).toBe('string');
      }
      expect(issues!.map((i) => i.path)).toEqual(expect.arrayContaining([['slug'], ['name']]));
    });

    it('a malformed UUID is BAD_REQUEST with an issue on the id', async () => {
      const err = await rejection(c().tenants.get.query({ id: 'not-a-uuid' }));
      expectCleanError(err, 'BAD_REQUEST', 400);
      expect(err.data?.issues).toEqual([{ path: ['id'], message: expect.any(String) }]);
    });

    it('a domain-level validation error (occurred_at too far ahead) also has issues', async () => {
      const future = new Date(Date.now() + 60 * 60_000).toISOString();
      const err = await rejection(c().audit.append.mutate({ action: 'x.y', actor: { id: 'a' }, occurred_at: future }));
      expectCleanError(err, 'BAD_REQUEST', 400);
      expect(err.data?.issues).toEqual([{ path: expect.any(Array), message: expect.any(String) }]);
    });

    it('batched calls each get their own result or error', async () => {
      const t = await tenant();
      const [ok, missing, bad] = await Promise.allSettled([
        c().tenants.get.query({ id: t.id }),
        c().tenants.get.query({ id: randomUUID() }),
        c().tenants.get.query({ id: 'x' }),
      ]);
      expect(ok).toEqual({ status: 'fulfilled', value: t });
      expect(missing.status === 'rejected' && (missing.reason as TRPCClientError<AppRouter>).data?.httpStatus).toBe(404);
      expect(bad.status === 'rejected' && (bad.reason as TRPCClientError<AppRouter>).data?.httpStatus).toBe(400);
    });
  });

  describe('headers and token', () => {
    it('sends the headers and the bearer token (sync, async, function) on every request', async () => {
      const seen: Headers[] = [];
      const recording: typeof fetch = async (input, init) => {
        seen.push(new Headers(init?.headers));
        return fetch(input, init);
      };
      let n = 0;
      const tokened = createRegistryClient({
        url: `${server().url}/`,
        headers: async () => ({ 'x-request-id': `req-${++n}`, Authorization: 'Basic ignored' }),
        token: async () => 'tok-1',
        fetch: recording,
      });
      const t = await tokened.tenants.create.mutate({ slug: randomSlug('h'), name: 'Headers' });
      await tokened.tenants.get.query({ id: t.id });
      expect(seen).toHaveLength(2);
      expect(seen.map((h) => h.get('authorization'))).toEqual(['Bearer tok-1', 'Bearer tok-1']);
      expect(seen.map((h) => h.get('x-request-id'))).toEqual(['req-1', 'req-2']);

      const plain = createRegistryClient({ url: server().url, headers: { 'x-team': 'portal' }, fetch: recording });
      await plain.catalog.list.query({});
      expect(seen[2]!.get('x-team')).toBe('portal');
      expect(seen[2]!.get('authorization')).toBeNull();
    });
  });
});

describe('requestHeaders', () => {
  it('merges headers and token; an empty token adds nothing', async () => {
    expect(await requestHeaders({})).toEqual({});
    expect(await requestHeaders({ headers: { a: '1' }, token: 't' })).toEqual({ a: '1', authorization: 'Bearer t' });
    expect(await requestHeaders({ headers: () => ({ AUTHORIZATION: 'x' }), token: () => 't2' })).toEqual({
      authorization: 'Bearer t2',
    });
    expect(await requestHeaders({ headers: { authorization: 'keep' }, token: () => '' })).toEqual({ authorization: 'keep' });
    expect(await requestHeaders({ token: async () => null })).toEqual({});
  });
});
