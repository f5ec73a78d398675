/**
 * Runs a suite against both stores: `eachStore('tenants', (t) => { it(..., async () => t().http…) })`.
 * Each file gets one server per store; the Postgres one on its own freshly migrated database.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe } from 'vitest';
import { provisionDatabase, type TestDatabase } from './database.js';
import { startServer, type StoreKind, type TestServer } from './server.js';

export const STORE_KINDS: StoreKind[] = ['memory', 'postgres'];

export function eachStore(name: string, suite: (server: () => TestServer, kind: StoreKind) => void): void {
  describe.each(STORE_KINDS)(`${name} [%s store]`, (kind) => {
    let server: TestServer | undefined;
    let db: TestDatabase | undefined;
    beforeAll(async () => {
      if (kind === 'postgres') db = await provisionDatabase();
      server = await startServer(kind, { databaseUrl: db?.url });
    }, 120_000);
    afterAll(async () => {
      await server?.close();
      await db?.drop();
    }, 60_000);
    suite(() => {
      if (!server) throw new Error('server not started');
      return server;
    }, kind);
  });
}

export const randomSlug = (prefix = 't') => `${prefix}-${randomBytes(5).toString('hex')}`;

/** A fresh tenant (status trial) for one test. */
export async function newTenant(server: TestServer, opts: { status?: 'trial' | 'active' | 'frozen' } = {}) {
  const created = await server.http.post('/v1/tenants', { slug: randomSlug(), name: 'Test tenant' });
  if (created.status !== 201) throw new Error(`tenant create failed: ${created.status} ${created.text}`);
  let tenant = created.body;
  if (opts.status === 'active' || opts.status === 'frozen') {
    tenant = (await server.http.post(`/v1/tenants/${tenant.id}/activate`)).body;
  }
  if (opts.status === 'frozen') {
    tenant = (await server.http.post(`/v1/tenants/${tenant.id}/cancel`)).body;
  }
  return tenant as { id: string; slug: string; name: string; status: string; created_at: string; updated_at: string };
}

/** The automatic audit events of one tenant, newest first. */
export async function auditOf(server: TestServer, tenantId: string, action?: string) {
  const q = new URLSearchParams({ tenant_id: tenantId, limit: '500' });
  if (action) q.set('action', action);
  const res = await server.http.get(`/v1/audit?${q}`);
  if (res.status !== 200) throw new Error(`audit query failed: ${res.status} ${res.text}`);
  return res.body.items as any[];
}
