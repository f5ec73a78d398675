/**
 * The client examples (examples/python/verify.py, examples/go/verify.go) against the running
 * app with authentication on: a product's service token verifies a key and appends an audit
 * event, which then shows in GET /v1/audit. The Go example runs with `go run verify.go`
 * (no module); each runtime missing from the machine skips its tests, saying so (.ci/run
 * installs golang-go; python3 is on the machine).
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomSlug } from './harness/each-store.js';
import { OidcIssuer } from './harness/oidc-issuer.js';
import { cleanEnv, hasCommand, killChildren, run, type RunResult } from './harness/run.js';
import { startServer, type TestServer } from './harness/server.js';

const EXAMPLES = fileURLToPath(new URL('../examples/', import.meta.url));

interface Example {
  name: string;
  command: string;
  /** Where it runs, and how, with the key as its first argument (when given). */
  cwd: string;
  args: (key?: string) => string[];
  client: string;
  env?: () => Record<string, string>;
}

/** Go needs a build cache; when there is no HOME (a bare CI shell), one in the temp dir. */
const goEnv = () => ({
  GOTOOLCHAIN: 'local',
  GOPROXY: 'off',
  GOFLAGS: '',
  ...(process.env.HOME || process.env.GOCACHE ? {} : { GOCACHE: mkdtempSync(join(tmpdir(), 'go-build-')) }),
});

const EXAMPLE_LIST: Example[] = [
  { name: 'python', command: 'python3', cwd: join(EXAMPLES, 'python'), args: (key) => ['verify.py', ...(key ? [key] : [])], client: 'python-example' },
  { name: 'go', command: 'go', cwd: join(EXAMPLES, 'go'), args: (key) => ['run', 'verify.go', ...(key ? [key] : [])], client: 'go-example', env: goEnv },
];

const available = new Map<string, boolean>();
for (const example of EXAMPLE_LIST) available.set(example.name, await hasCommand(example.command));

let issuer: OidcIssuer;
let server: TestServer;
let adminToken: string;
let serviceToken: string;

const admin = (token = adminToken) => ({ headers: { authorization: `Bearer ${token}` } });

beforeAll(async () => {
  issuer = await OidcIssuer.start();
  server = await startServer('memory', { auth: issuer.authenticator() });
  adminToken = await issuer.tokenFor('platform-admin');
  serviceToken = await issuer.tokenFor('service');
});

afterAll(async () => {
  await killChildren();
  await server?.close();
  await issuer?.close();
});

/** A tenant on an analytics trial, and an API key for analytics. */
async function tenantWithKey() {
  const tenant = await server.http.post('/v1/tenants', { slug: randomSlug('ex'), name: 'Example' }, admin());
  expect(tenant.status).toBe(201);
  const trial = await server.http.post('/v1/catalog/trial-request', { tenant_id: tenant.body.id, product: 'analytics' }, admin());
  expect(trial.status).toBe(201);
  const key = await server.http.post('/v1/api-keys', { tenant_id: tenant.body.id, name: 'gateway', product: 'analytics' }, admin());
  expect(key.status).toBe(201);
  return { tenant: tenant.body, keyId: key.body.api_key.id as string, plaintext: key.body.plaintext as string };
}

/** Runs an example; `code` is the program's own exit code (`go run` exits 1 and prints `exit status N`). */
async function runExample(example: Example, opts: { key?: string; env?: Record<string, string> }): Promise<RunResult> {
  const env = cleanEnv({ REGISTRY_URL: server.url, ...example.env?.(), ...opts.env });
  const res = await run(example.command, example.args(opts.key), { cwd: example.cwd, env, timeoutMs: 120_000 });
  const reported = example.name === 'go' && res.code === 1 ? /^exit status (\d+)$/m.exec(res.stderr)?.[1] : undefined;
  return reported ? { ...res, code: Number(reported) } : res;
}

for (const example of EXAMPLE_LIST) {
  const present = available.get(example.name)!;
  const skipped = present ? '' : ` (SKIPPED: \`${example.command}\` is not installed${example.name === 'go' ? '; apt-get install -y golang-go, as .ci/run does' : ''})`;
  if (!present) console.warn(`[examples.test] ${example.command} not found: skipping the ${example.name} example`);

  describe.skipIf(!present)(`examples/${example.name}${skipped}`, () => {
    it('verifies a key with the service token and appends an audit event that GET /v1/audit then lists', { timeout: 120_000 }, async () => {
      const { tenant, keyId, plaintext } = await tenantWithKey();
      const res = await runExample(example, { key: plaintext, env: { REGISTRY_TOKEN: serviceToken } });
      expect(res.code, `${res.stdout}\n${res.stderr}`).toBe(0);
      expect(res.stdout).toContain(`verify: valid key_id=${keyId} tenant_id=${tenant.id} tenant=${tenant.slug} product=analytics`);
      const eventId = /^audit: appended event_id=([0-9a-f-]{36}) action=api\.request$/m.exec(res.stdout)?.[1];
      expect(eventId, res.stdout).toBeDefined();

      const audit = await server.http.get(`/v1/audit?tenant_id=${tenant.id}&action=api.request`, admin());
      expect(audit.status).toBe(200);
      expect(audit.body.items).toHaveLength(1);
      expect(audit.body.items[0]).toMatchObject({
        id: eventId,
        tenant_id: tenant.id,
        product: 'analytics',
        action: 'api.request',
        crud: 'r',
        actor: { id: keyId, type: 'api_key' },
        fields: { client: example.client },
      });
    });

    it('says `verify: invalid CODE` and exits 1 for a revoked key (key from REGISTRY_API_KEY), appending nothing', { timeout: 120_000 }, async () => {
      const { tenant, keyId, plaintext } = await tenantWithKey();
      expect((await server.http.delete(`/v1/api-keys/${keyId}`, admin())).status).toBe(200);
      const res = await runExample(example, { env: { REGISTRY_TOKEN: serviceToken, REGISTRY_API_KEY: plaintext } });
      expect(res.code, `${res.stdout}\n${res.stderr}`).toBe(1);
      expect(res.stdout.trim()).toBe('verify: invalid REVOKED');
      const audit = await server.http.get(`/v1/audit?tenant_id=${tenant.id}&action=api.request`, admin());
      expect(audit.body.items).toEqual([]);
    });

    it('exits 2 with the registry’s answer when its own token is missing (401), never claiming the key is valid', { timeout: 120_000 }, async () => {
      const res = await runExample(example, { key: 'bp_AAAAAAAAAAAAAAAAAAAAAA' });
      expect(res.code, `${res.stdout}\n${res.stderr}`).toBe(2);
      expect(res.stdout).not.toContain('verify: valid');
      expect(res.stderr).toMatch(/401/);
    });
  });
}
