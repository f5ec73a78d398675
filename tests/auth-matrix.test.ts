/**
 * The access matrix of the auth issue, cell by cell, on both stores and over both REST and
 * tRPC, with real tokens from an OIDC issuer stand-in:
 *
 *   - an allowed cell succeeds (on the caller's own tenant for tenant roles);
 *   - a denied cell is 403 on a tenant the caller can see (their own; any for `service`);
 *   - a tenant role asking about another tenant is 404 — the same answer, body included, as
 *     for a tenant (or key, or slug) that does not exist — whether or not the role would be
 *     allowed on its own tenant;
 *   - a refused call changes nothing: the tenants, their entitlements, keys and audit trail
 *     read the same before and after.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Role } from '../src/auth/principal.js';
import { provisionDatabase, type TestDatabase } from './harness/database.js';
import { randomSlug, STORE_KINDS } from './harness/each-store.js';
import { OidcIssuer } from './harness/oidc-issuer.js';
import { startServer, type TestServer } from './harness/server.js';

const ROLES: Role[] = ['platform-admin', 'service', 'tenant-admin', 'tenant-member'];
const TENANT_ROLES: Role[] = ['tenant-admin', 'tenant-member'];
type Transport = 'rest' | 'trpc';
const TRANSPORTS: Transport[] = ['rest', 'trpc'];

interface Tenant {
  id: string;
  slug: string;
  status: string;
}

interface Key {
  id: string;
  plaintext: string;
}

/** Fixtures shared by the denied cells (which must not change them). */
interface Shared {
  /** The caller's own tenant (for tenant roles), with a key. */
  a: Tenant;
  keyA: Key;
  /** Another tenant, with a key. */
  b: Tenant;
  keyB: Key;
}

interface Outcome {
  status: number;
  /** REST: the body; tRPC: `result.data`. */
  data: any;
  /** The error code (REST `code`, tRPC `error.data.code`), if any. */
  code: string | undefined;
  /** What identifies the error to a caller (for "same as not found" comparisons). */
  error: unknown;
  text: string;
}

interface Env {
  s: TestServer;
  shared: Shared;
  /** A fresh tenant made by the platform admin, in the given status. */
  fresh(status?: 'trial' | 'active'): Promise<Tenant>;
  /** A fresh API key of a tenant (argon2: ~200 ms). */
  freshKey(tenantId: string): Promise<Key>;
}

interface AllowedCase {
  /** The tenants a tenant role's token names. */
  tenantIds: string[];
  input: unknown;
  check(data: any): void | Promise<void>;
}

type Target = 'own' | 'other' | 'missing';

interface OpSpec {
  /** The matrix row. */
  row: string;
  proc: string;
  kind: 'query' | 'mutation';
  /** REST status of success (creations say 201). */
  created?: boolean;
  rest(input: any): { method: string; path: string; body?: unknown };
  allowed: readonly Role[];
  /** About one tenant: another tenant's resource is 404 for tenant roles. */
  scoped: boolean;
  allowedCase(env: Env, role: Role): Promise<AllowedCase>;
  /** The input of a call about the shared own tenant (A), the other one (B), or nothing that exists. */
  refusedInput(target: Target, shared: Shared): unknown;
}

const qs = (input: Record<string, unknown>) => {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(input)) if (v !== undefined) q.set(k, String(v));
  const s = q.toString();
  return s ? `?${s}` : '';
};

const tenantOf = (target: Target, sh: Shared) => (target === 'own' ? sh.a.id : target === 'other' ? sh.b.id : randomUUID());

/** The access matrix, as the issue writes it. */
const OPS: OpSpec[] = [
  {
    row: 'create tenant',
    proc: 'tenants.create',
    kind: 'mutation',
    created: true,
    rest: (input) => ({ method: 'POST', path: '/v1/tenants', body: input }),
    allowed: ['platform-admin'],
    scoped: false,
    async allowedCase() {
      const slug = randomSlug('mx');
      return { tenantIds: [], input: { slug, name: 'Matrix' }, check: (t) => expect(t).toMatchObject({ slug, status: 'trial' }) };
    },
    refusedInput: () => ({ slug: randomSlug('denied'), name: 'Denied' }),
  },
  {
    row: 'activate',
    proc: 'tenants.activate',
    kind: 'mutation',
    rest: (input) => ({ method: 'POST', path: `/v1/tenants/${input.id}/activate` }),
    allowed: ['platform-admin'],
    scoped: true,
    async allowedCase(env) {
      const t = await env.fresh('trial');
      return { tenantIds: [t.id], input: { id: t.id }, check: (r) => expect(r).toMatchObject({ id: t.id, status: 'active' }) };
    },
    refusedInput: (target, sh) => ({ id: tenantOf(target, sh) }),
  },
  {
    row: 'cancel',
    proc: 'tenants.cancel',
    kind: 'mutation',
    rest: (input) => ({ method: 'POST', path: `/v1/tenants/${input.id}/cancel` }),
    allowed: ['platform-admin'],
    scoped: true,
    async allowedCase(env) {
      const t = await env.fresh('active');
      return { tenantIds: [t.id], input: { id: t.id }, check: (r) => expect(r).toMatchObject({ id: t.id, status: 'frozen' }) };
    },
    refusedInput: (target, sh) => ({ id: tenantOf(target, sh) }),
  },
  {
    row: 'get tenant by id',
    proc: 'tenants.get',
    kind: 'query',
    rest: (input) => ({ method: 'GET', path: `/v1/tenants/${input.id}` }),
    allowed: ROLES,
    scoped: true,
    async allowedCase(env) {
      const { a } = env.shared;
      return { tenantIds: [a.id], input: { id: a.id }, check: (t) => expect(t).toMatchObject({ id: a.id, slug: a.slug }) };
    },
    refusedInput: (target, sh) => ({ id: tenantOf(target, sh) }),
  },
  {
    row: 'get tenant by slug',
    proc: 'tenants.bySlug',
    kind: 'query',
    rest: (input) => ({ method: 'GET', path: `/v1/tenants/by-slug/${input.slug}` }),
    allowed: ROLES,
    scoped: true,
    async allowedCase(env) {
      const { a } = env.shared;
      return { tenantIds: [a.id], input: { slug: a.slug }, check: (t) => expect(t).toMatchObject({ id: a.id, slug: a.slug }) };
    },
    refusedInput: (target, sh) => ({ slug: target === 'own' ? sh.a.slug : target === 'other' ? sh.b.slug : randomSlug('missing') }),
  },
  {
    row: 'list entitlements',
    proc: 'entitlements.list',
    kind: 'query',
    rest: (input) => ({ method: 'GET', path: `/v1/entitlements${qs(input)}` }),
    allowed: ROLES,
    scoped: true,
    async allowedCase(env) {
      const { a } = env.shared;
      return { tenantIds: [a.id], input: { tenant_id: a.id }, check: (r) => expect(r).toEqual({ items: [] }) };
    },
    refusedInput: (target, sh) => ({ tenant_id: tenantOf(target, sh) }),
  },
  {
    row: 'catalog list',
    proc: 'catalog.list',
    kind: 'query',
    rest: () => ({ method: 'GET', path: '/v1/catalog' }),
    allowed: ROLES,
    scoped: false,
    async allowedCase(env) {
      return {
        tenantIds: [env.shared.a.id],
        input: {},
        check: (r) => expect(r.items.map((p: any) => p.key)).toEqual(['analytics', 'automation', 'compliance', 'enterprise-sso']),
      };
    },
    refusedInput: () => ({}),
  },
  {
    row: 'catalog request',
    proc: 'catalog.request',
    kind: 'mutation',
    created: true,
    rest: (input) => ({ method: 'POST', path: '/v1/catalog/request', body: input }),
    allowed: ['platform-admin', 'tenant-admin'],
    scoped: true,
    async allowedCase(env) {
      const t = await env.fresh();
      return {
        tenantIds: [t.id],
        input: { tenant_id: t.id, product: 'analytics' },
        check: (r) => expect(r).toMatchObject({ tenant_id: t.id, product: 'analytics', status: 'pending' }),
      };
    },
    refusedInput: (target, sh) => ({ tenant_id: tenantOf(target, sh), product: 'analytics', note: 'denied' }),
  },
  {
    row: 'trial request',
    proc: 'catalog.trialRequest',
    kind: 'mutation',
    created: true,
    rest: (input) => ({ method: 'POST', path: '/v1/catalog/trial-request', body: input }),
    allowed: ['platform-admin', 'tenant-admin'],
    scoped: true,
    async allowedCase(env) {
      const t = await env.fresh();
      return {
        tenantIds: [t.id],
        input: { tenant_id: t.id, product: 'automation' },
        check: (r) => expect(r).toMatchObject({ tenant_id: t.id, product: 'automation', status: 'trial', source: 'trial' }),
      };
    },
    refusedInput: (target, sh) => ({ tenant_id: tenantOf(target, sh), product: 'automation' }),
  },
  {
    row: 'api keys create',
    proc: 'apiKeys.create',
    kind: 'mutation',
    created: true,
    rest: (input) => ({ method: 'POST', path: '/v1/api-keys', body: input }),
    allowed: ['platform-admin', 'tenant-admin'],
    scoped: true,
    async allowedCase(env) {
      const t = await env.fresh();
      return {
        tenantIds: [t.id],
        input: { tenant_id: t.id, name: 'matrix key' },
        check: (r) => {
          expect(r.plaintext).toMatch(/^bp_[A-Za-z0-9_-]{22}$/);
          expect(r.api_key).toMatchObject({ tenant_id: t.id, name: 'matrix key', revoked_at: null });
        },
      };
    },
    refusedInput: (target, sh) => ({ tenant_id: tenantOf(target, sh), name: 'denied key' }),
  },
  {
    row: 'api keys list',
    proc: 'apiKeys.list',
    kind: 'query',
    rest: (input) => ({ method: 'GET', path: `/v1/api-keys${qs(input)}` }),
    allowed: ['platform-admin', 'tenant-admin', 'tenant-member'],
    scoped: true,
    async allowedCase(env) {
      const { a, keyA } = env.shared;
      return {
        tenantIds: [a.id],
        input: { tenant_id: a.id },
        check: (r) => {
          expect(r.items.map((k: any) => k.id)).toEqual([keyA.id]);
          expect(JSON.stringify(r)).not.toContain(keyA.plaintext);
        },
      };
    },
    refusedInput: (target, sh) => ({ tenant_id: tenantOf(target, sh) }),
  },
  {
    row: 'api keys revoke',
    proc: 'apiKeys.revoke',
    kind: 'mutation',
    rest: (input) => ({ method: 'DELETE', path: `/v1/api-keys/${input.id}` }),
    allowed: ['platform-admin', 'tenant-admin'],
    scoped: true,
    async allowedCase(env) {
      const t = await env.fresh();
      const key = await env.freshKey(t.id);
      return {
        tenantIds: [t.id],
        input: { id: key.id },
        check: (r) => expect(r).toMatchObject({ id: key.id, tenant_id: t.id, revoked_at: expect.any(String) }),
      };
    },
    refusedInput: (target, sh) => ({ id: target === 'own' ? sh.keyA.id : target === 'other' ? sh.keyB.id : randomUUID() }),
  },
  {
    row: 'verify api key',
    proc: 'apiKeys.verify',
    kind: 'mutation',
    rest: (input) => ({ method: 'POST', path: '/v1/internal/api-keys/verify', body: input }),
    allowed: ['platform-admin', 'service'],
    scoped: false,
    async allowedCase(env) {
      const { a, keyA } = env.shared;
      return {
        tenantIds: [a.id],
        input: { key: keyA.plaintext },
        check: (r) => expect(r).toMatchObject({ valid: true, key_id: keyA.id, tenant_id: a.id, tenant_slug: a.slug }),
      };
    },
    refusedInput: (_target, sh) => ({ key: sh.keyA.plaintext }),
  },
  {
    row: 'append audit',
    proc: 'audit.append',
    kind: 'mutation',
    created: true,
    rest: (input) => ({ method: 'POST', path: '/v1/audit', body: input }),
    allowed: ['platform-admin', 'service'],
    scoped: true,
    async allowedCase(env) {
      const t = await env.fresh();
      return {
        tenantIds: [t.id],
        input: { tenant_id: t.id, action: 'matrix.appended', actor: { id: 'matrix' } },
        check: (r) => expect(r).toMatchObject({ tenant_id: t.id, action: 'matrix.appended', actor: { id: 'matrix', type: 'service' } }),
      };
    },
    refusedInput: (target, sh) => ({ tenant_id: tenantOf(target, sh), action: 'matrix.denied', actor: { id: 'intruder' } }),
  },
  {
    row: 'query audit',
    proc: 'audit.query',
    kind: 'query',
    rest: (input) => ({ method: 'GET', path: `/v1/audit${qs(input)}` }),
    allowed: ['platform-admin', 'tenant-admin'],
    scoped: true,
    async allowedCase(env, role) {
      const { a } = env.shared;
      // A tenant admin who names no tenant gets their own; the platform admin names one.
      return {
        tenantIds: [a.id],
        input: role === 'tenant-admin' ? {} : { tenant_id: a.id },
        check: (r) => {
          expect(r.items.length).toBeGreaterThan(0);
          expect(new Set(r.items.map((e: any) => e.tenant_id))).toEqual(new Set([a.id]));
        },
      };
    },
    refusedInput: (target, sh) => ({ tenant_id: tenantOf(target, sh) }),
  },
];

/** Extra refused inputs beyond refusedInput('own'): the same 403 is expected for them. */
const EXTRA_REFUSALS: Record<string, (sh: Shared) => unknown[]> = {
  // Without a tenant: an event about no tenant, a query that names none.
  'audit.append': () => [{ action: 'matrix.denied', actor: { id: 'intruder' } }],
  'audit.query': () => [{}],
};

describe.each(STORE_KINDS)('access matrix [%s store]', (kind) => {
  let issuer: OidcIssuer;
  let s: TestServer;
  let db: TestDatabase | undefined;
  let adminToken: string;
  let shared: Shared;

  async function call(transport: Transport, token: string, op: OpSpec, input: unknown): Promise<Outcome> {
    const headers: Record<string, string> = { authorization: `Bearer ${token}` };
    if (transport === 'rest') {
      const { method, path, body } = op.rest(input);
      const res = await s.http.request(method, path, { headers, body });
      return { status: res.status, data: res.body, code: res.body?.code, error: res.body, text: res.text };
    }
    const res =
      op.kind === 'query'
        ? await s.http.get(`/trpc/${op.proc}?input=${encodeURIComponent(JSON.stringify(input))}`, { headers })
        : await s.http.post(`/trpc/${op.proc}`, input, { headers });
    const error = res.body?.error;
    return {
      status: res.status,
      data: res.body?.result?.data,
      code: error?.data?.code,
      error: error ? { message: error.message, code: error.data?.code, httpStatus: error.data?.httpStatus } : undefined,
      text: res.text,
    };
  }

  const admin = (method: string, path: string, body?: unknown) =>
    s.http.request(method, path, { headers: { authorization: `Bearer ${adminToken}` }, body });

  async function fresh(status: 'trial' | 'active' = 'trial'): Promise<Tenant> {
    const res = await admin('POST', '/v1/tenants', { slug: randomSlug('mx'), name: 'Matrix tenant' });
    if (res.status !== 201) throw new Error(`tenant create failed: ${res.status} ${res.text}`);
    if (status === 'active') {
      const act = await admin('POST', `/v1/tenants/${res.body.id}/activate`);
      if (act.status !== 200) throw new Error(`activate failed: ${act.status} ${act.text}`);
      return act.body;
    }
    return res.body;
  }

  async function freshKey(tenantId: string): Promise<Key> {
    const res = await admin('POST', '/v1/api-keys', { tenant_id: tenantId, name: 'fixture' });
    if (res.status !== 201) throw new Error(`key create failed: ${res.status} ${res.text}`);
    return { id: res.body.api_key.id, plaintext: res.body.plaintext };
  }

  /** Everything a refused call could have changed about a tenant, read as the platform admin. */
  async function snapshot(tenantId: string) {
    const [tenant, entitlements, keys] = await Promise.all([
      admin('GET', `/v1/tenants/${tenantId}`),
      admin('GET', `/v1/entitlements?tenant_id=${tenantId}`),
      admin('GET', `/v1/api-keys?tenant_id=${tenantId}&include_revoked=true`),
    ]);
    for (const r of [tenant, entitlements, keys]) expect(r.status, r.text).toBe(200);
    return {
      tenant: tenant.body,
      entitlements: entitlements.body.items,
      // last_used_at is coalesced in the background (verify cells touch it).
      keys: keys.body.items.map(({ last_used_at: _, ...k }: any) => k),
    };
  }

  /**
   * The shared tenants, and the newest audit events of all tenants and none: every state
   * change writes one in its own transaction, so a refusal that changed anything shows here.
   */
  const snapshotAll = async () => {
    const audit = await admin('GET', '/v1/audit?limit=500');
    expect(audit.status, audit.text).toBe(200);
    return { a: await snapshot(shared.a.id), b: await snapshot(shared.b.id), audit: audit.body.items.map((e: any) => e.id) };
  };

  beforeAll(async () => {
    issuer = await OidcIssuer.start();
    if (kind === 'postgres') db = await provisionDatabase();
    s = await startServer(kind, { databaseUrl: db?.url, auth: issuer.authenticator() });
    adminToken = await issuer.tokenFor('platform-admin');
    const [a, b] = [await fresh(), await fresh()];
    const [keyA, keyB] = await Promise.all([freshKey(a.id), freshKey(b.id)]);
    shared = { a, b, keyA, keyB };
  }, 120_000);

  afterAll(async () => {
    await s?.close();
    await db?.drop();
    await issuer?.close();
  }, 60_000);

  describe.each(TRANSPORTS)('over %s', (transport) => {
    const ok = (op: OpSpec) => (transport === 'rest' && op.created ? 201 : 200);

    describe.each(OPS.map((op) => [op.row, op] as const))('%s', (_row, op) => {
      it.each(ROLES)('%s', async (role) => {
        const env: Env = { s, shared, fresh, freshKey };
        const isTenantRole = TENANT_ROLES.includes(role);
        const ownToken = await issuer.tokenFor(role, [shared.a.id]);

        if (op.allowed.includes(role)) {
          const allowed = await op.allowedCase(env, role);
          const token = await issuer.tokenFor(role, allowed.tenantIds);
          const res = await call(transport, token, op, allowed.input);
          expect(res.status, `${role} ${op.proc}: ${res.text.slice(0, 300)}`).toBe(ok(op));
          await allowed.check(res.data);
        }

        /** Calls that must be refused, with the status each must get. */
        const refusals: { input: unknown; status: 403 | 404 }[] = [];
        if (!op.allowed.includes(role)) {
          // Denied on a tenant the caller can see (their own; any for the service): 403.
          refusals.push({ input: op.refusedInput('own', shared), status: 403 });
          for (const input of EXTRA_REFUSALS[op.proc]?.(shared) ?? []) refusals.push({ input, status: 403 });
          if (role === 'service' && op.scoped) refusals.push({ input: op.refusedInput('other', shared), status: 403 });
        }
        // Another tenant's resource: 404 for tenant roles, allowed on their own tenant or not.
        if (isTenantRole && op.scoped) refusals.push({ input: op.refusedInput('other', shared), status: 404 });
        if (refusals.length === 0) return;

        const before = await snapshotAll();
        for (const { input, status } of refusals) {
          const res = await call(transport, ownToken, op, input);
          expect(res.status, `${role} ${op.proc} ${JSON.stringify(input)}: ${res.text.slice(0, 300)}`).toBe(status);
          expect(res.code).toBe(status === 403 ? 'FORBIDDEN' : 'NOT_FOUND');
          if (status === 404) {
            // The same answer, message included, as for a tenant (key, slug) that does not exist.
            const missing = await call(transport, ownToken, op, op.refusedInput('missing', shared));
            expect(missing.status, missing.text).toBe(404);
            expect(res.error, `${op.proc}: another tenant's answer differs from a missing one's`).toEqual(missing.error);
          }
        }
        // Refusals changed nothing.
        expect(await snapshotAll()).toEqual(before);
      });
    });
  });

  it('a refused tenant creation leaves no tenant behind', async () => {
    const slug = randomSlug('denied');
    for (const role of ['service', 'tenant-admin', 'tenant-member'] as const) {
      const token = await issuer.tokenFor(role, [shared.a.id]);
      for (const transport of TRANSPORTS) {
        const res = await call(transport, token, OPS[0]!, { slug, name: 'Denied' });
        expect(res.status).toBe(403);
      }
    }
    expect((await admin('GET', `/v1/tenants/by-slug/${slug}`)).status).toBe(404);
  });

  it('a refused verify reveals nothing about the key', async () => {
    const token = await issuer.tokenFor('tenant-admin', [shared.a.id]);
    for (const key of [shared.keyA.plaintext, shared.keyB.plaintext, 'bp_AAAAAAAAAAAAAAAAAAAAAA', 'garbage']) {
      const res = await s.http.post('/v1/internal/api-keys/verify', { key }, { headers: { authorization: `Bearer ${token}` } });
      expect(res.status).toBe(403);
      expect(res.body).toEqual({ code: 'FORBIDDEN', message: expect.any(String) });
    }
  });

  it('the platform admin and the service see a missing tenant as 404 (no special-casing)', async () => {
    for (const role of ['platform-admin', 'service'] as const) {
      const token = await issuer.tokenFor(role);
      const res = await s.http.get(`/v1/tenants/${randomUUID()}`, { headers: { authorization: `Bearer ${token}` } });
      expect(res.status).toBe(404);
    }
  });
});
