/**
 * The generated REST client (src/rest-client/): its committed types are what
 * `npm run client:generate` writes from the committed openapi.yaml, and it talks to the
 * running app (authentication on, tokens from the test issuer), with typed answers.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, expectTypeOf, it } from 'vitest';
import { createRestClient, type RestClient, type RestSchemas } from '../src/rest-client/index.js';
import { randomSlug } from './harness/each-store.js';
import { OidcIssuer } from './harness/oidc-issuer.js';
import { startServer, type TestServer } from './harness/server.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const COMMITTED = readFileSync(join(ROOT, 'src/rest-client/schema.d.ts'), 'utf8');

describe('src/rest-client/schema.d.ts', () => {
  it('is what `npm run client:generate` writes from openapi.yaml now (run it and commit the result if not)', { timeout: 90_000 }, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'rest-client-'));
    try {
      const out = join(dir, 'schema.d.ts');
      // The same command as the npm script, without npm in between.
      const cli = join(ROOT, 'node_modules/openapi-typescript/bin/cli.js');
      await promisify(execFile)(process.execPath, [cli, 'openapi.yaml', '-o', out], { cwd: ROOT, timeout: 80_000 });
      const fresh = readFileSync(out, 'utf8');
      expect(COMMITTED === fresh, 'src/rest-client/schema.d.ts is out of date: run `npm run client:generate` and commit the result').toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('createRestClient against the running app', () => {
  let issuer: OidcIssuer;
  let server: TestServer;
  let admin: RestClient;

  beforeAll(async () => {
    issuer = await OidcIssuer.start();
    server = await startServer('memory', { auth: issuer.authenticator() });
    // A token provider, called per request (as a real caller refreshing its token would).
    admin = createRestClient({ baseUrl: `${server.url}/`, token: () => issuer.tokenFor('platform-admin') });
  });

  afterAll(async () => {
    await server?.close();
    await issuer?.close();
  });

  it('creates a tenant (201, typed), reads it back by id and by slug', async () => {
    const slug = randomSlug('rc');
    const created = await admin.POST('/v1/tenants', { body: { slug, name: 'REST client' } });
    expect(created.response.status).toBe(201);
    expectTypeOf(created.data).toEqualTypeOf<RestSchemas['Tenant'] | undefined>();
    const tenant = created.data!;
    expect(tenant).toMatchObject({ slug, name: 'REST client', status: 'trial' });

    const byId = await admin.GET('/v1/tenants/{id}', { params: { path: { id: tenant.id } } });
    expect(byId.response.status).toBe(200);
    expect(byId.data).toEqual(tenant);
    const bySlug = await admin.GET('/v1/tenants/by-slug/{slug}', { params: { path: { slug } } });
    expect(bySlug.data?.id).toBe(tenant.id);
  });

  it('issues a key, verifies it with a service token, appends and queries audit events', async () => {
    const tenant = (await admin.POST('/v1/tenants', { body: { slug: randomSlug('rc'), name: 'Keys' } })).data!;
    const trial = await admin.POST('/v1/catalog/trial-request', { body: { tenant_id: tenant.id, product: 'analytics' } });
    expect(trial.response.status).toBe(201);
    const key = await admin.POST('/v1/api-keys', {
      body: { tenant_id: tenant.id, name: 'gateway', product: 'analytics' },
      headers: { 'Idempotency-Key': `rc-${tenant.id}` },
    });
    expect(key.response.status).toBe(201);
    const plaintext = key.data!.plaintext;

    const service = createRestClient({ baseUrl: server.url, token: await issuer.tokenFor('service') });
    const verified = await service.POST('/v1/internal/api-keys/verify', { body: { key: plaintext } });
    expect(verified.response.status).toBe(200);
    expectTypeOf(verified.data).toEqualTypeOf<RestSchemas['VerifyResult'] | undefined>();
    expect(verified.data).toMatchObject({ valid: true, key_id: key.data!.api_key.id, tenant_id: tenant.id, product: 'analytics' });
    const wrong = await service.POST('/v1/internal/api-keys/verify', { body: { key: 'bp_AAAAAAAAAAAAAAAAAAAAAA' } });
    expect(wrong.data).toMatchObject({ valid: false });

    const appended = await service.POST('/v1/audit', {
      body: { tenant_id: tenant.id, product: 'analytics', action: 'report.exported', crud: 'r', actor: { id: 'u-1', type: 'user' }, fields: { format: 'csv' } },
    });
    expect(appended.response.status).toBe(201);

    const page = await admin.GET('/v1/audit', { params: { query: { tenant_id: tenant.id, limit: 50 } } });
    expect(page.response.status).toBe(200);
    expectTypeOf(page.data).toEqualTypeOf<RestSchemas['AuditPage'] | undefined>();
    const actions = page.data!.items.map((e) => e.action);
    expect(actions[0]).toBe('report.exported');
    expect(actions).toEqual(expect.arrayContaining(['tenant.created', 'api_key.created']));
    expect(page.data!.items[0]!.id).toBe(appended.data!.id);
  });

  it('answers errors as typed `{ code, message }` bodies, not exceptions', async () => {
    const missing = await admin.GET('/v1/tenants/{id}', { params: { path: { id: '00000000-0000-4000-8000-000000000000' } } });
    expect(missing.response.status).toBe(404);
    expect(missing.data).toBeUndefined();
    expect(missing.error).toMatchObject({ code: 'NOT_FOUND' });

    const slug = randomSlug('rc');
    await admin.POST('/v1/tenants', { body: { slug, name: 'Twice' } });
    const taken = await admin.POST('/v1/tenants', { body: { slug, name: 'Twice' } });
    expect(taken.response.status).toBe(409);
    expectTypeOf(taken.error).toEqualTypeOf<RestSchemas['Error'] | undefined>();
    expect(taken.error?.code).toBe('CONFLICT');

    const invalid = await admin.POST('/v1/tenants', { body: { slug: 'NOT A SLUG', name: '' } });
    expect(invalid.response.status).toBe(400);
    expect(invalid.error?.code).toBe('BAD_REQUEST');
    expect(invalid.error?.issues?.length).toBeGreaterThan(0);

    const anonymous = createRestClient({ baseUrl: server.url });
    const refused = await anonymous.GET('/v1/catalog');
    expect(refused.response.status).toBe(401);
    expect(refused.response.headers.get('www-authenticate')).toMatch(/^Bearer/);
    expect(refused.error?.code).toBe('UNAUTHORIZED');

    // An empty token sends no header at all.
    const empty = createRestClient({ baseUrl: server.url, token: () => '' });
    expect((await empty.GET('/v1/catalog')).response.status).toBe(401);
  });
});
