/**
 * The production build, run the way the Dockerfile runs it, outside a container:
 *
 *   build stage:    npm run build                  (tsc → dist/, plus the files read at run time)
 *   runtime stage:  npm ci --omit=dev + dist/      (here: a directory outside the repository
 *                                                   holding package*.json, dist/ and only the
 *                                                   production packages of package-lock.json)
 *   init container: node dist/scripts/migrate.js
 *   server:         node dist/src/server.js        (plain node: no tsx, no dev dependencies)
 */
import { copyFileSync, cpSync, existsSync, linkSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, symlinkSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrationStatus } from '../src/db/migrations.js';
import { provisionEmptyDatabase, type TestDatabase } from './harness/database.js';
import { background, cleanEnv, freePort, killChildren, run, untilAnswers, type Background } from './harness/run.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

/** The Dockerfile's instructions, continuation lines joined, comments dropped. */
const DOCKERFILE = readFileSync(join(ROOT, 'Dockerfile'), 'utf8')
  .replace(/\\\n\s*/g, ' ')
  .split('\n')
  .filter((line) => line.trim() && !line.trimStart().startsWith('#'));
/** The exec-form command (JSON array) of the last instruction matching `prefix`. */
const execForm = (prefix: RegExp): string[] => {
  const line = DOCKERFILE.filter((l) => prefix.test(l)).at(-1);
  if (!line) throw new Error(`no ${prefix} in the Dockerfile`);
  return JSON.parse(line.slice(line.indexOf('['))) as string[];
};
/** `CMD ["node", "dist/src/server.js"]`, and the HEALTHCHECK's command. */
const SERVER_CMD = execForm(/^CMD /);
const HEALTHCHECK_CMD = execForm(/^HEALTHCHECK .* CMD /);
const JOURNAL_TAGS = (JSON.parse(readFileSync(join(ROOT, 'drizzle/meta/_journal.json'), 'utf8')) as { entries: { tag: string }[] }).entries.map((e) => e.tag);

/** Hard links where the file system allows it (fast), copies otherwise; skips `skip`. */
function mirror(from: string, to: string, skip: string): void {
  mkdirSync(to, { recursive: true });
  for (const entry of readdirSync(from, { withFileTypes: true })) {
    const src = join(from, entry.name);
    const dst = join(to, entry.name);
    if (src === skip) continue;
    if (entry.isSymbolicLink()) symlinkSync(readlinkSync(src), dst);
    else if (entry.isDirectory()) mirror(src, dst, skip);
    else {
      try {
        linkSync(src, dst);
      } catch {
        copyFileSync(src, dst);
      }
    }
  }
}

/**
 * What `npm ci --omit=dev` installs, taken from the packages already in node_modules: every
 * package-lock entry not marked `dev` (nested node_modules only where the lock has them).
 */
function stageProduction(dir: string): { packages: number } {
  const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')) as { packages: Record<string, { dev?: boolean; link?: boolean }> };
  let packages = 0;
  for (const [path, meta] of Object.entries(lock.packages)) {
    if (!path || meta.dev || meta.link) continue;
    const src = join(ROOT, path);
    if (!existsSync(src)) continue; // an optional package for another platform
    mirror(src, join(dir, path), join(src, 'node_modules'));
    packages++;
  }
  for (const file of ['package.json', 'package-lock.json']) copyFileSync(join(ROOT, file), join(dir, file));
  cpSync(join(ROOT, 'dist'), join(dir, 'dist'), { recursive: true });
  return { packages };
}

let app: string;
let build: Awaited<ReturnType<typeof run>>;

beforeAll(async () => {
  build = await run('npm', ['run', 'build'], { cwd: ROOT, env: cleanEnv(), timeoutMs: 240_000 });
  if (build.code !== 0) throw new Error(`npm run build failed:\n${build.stdout}\n${build.stderr}`);
  // Outside the repository, so that nothing resolves from its node_modules.
  app = mkdtempSync(join(tmpdir(), 'tenant-registry-image-'));
  stageProduction(app);
}, 300_000);

afterAll(async () => {
  await killChildren();
  if (app) await rm(app, { recursive: true, force: true });
}, 120_000);

/** The Dockerfile's CMD (its `node` being this node), in the staged runtime directory. */
async function startCompiled(env: Record<string, string>): Promise<{ server: Background; url: string; port: number }> {
  const port = await freePort();
  const [command, ...args] = SERVER_CMD;
  const server = background(command === 'node' ? process.execPath : command!, args, {
    cwd: app,
    env: cleanEnv({ ADDR: `127.0.0.1:${port}`, LOG_LEVEL: 'warn', ...env }),
  });
  const url = `http://127.0.0.1:${port}`;
  await untilAnswers(server, `${url}/healthz`);
  return { server, url, port };
}

async function stop(server: Background) {
  server.proc.kill('SIGTERM');
  const exit = await server.exited;
  expect(exit, server.output()).toEqual({ code: 0, signal: null });
}

const json = async (res: Response) => ({ status: res.status, body: (await res.json()) as any });

describe('npm run build', () => {
  it('is what the Dockerfile runs: build stage `npm run build`, runtime `npm ci --omit=dev` + dist/, CMD the compiled server', () => {
    expect(DOCKERFILE).toContain('RUN npm run build');
    expect(DOCKERFILE.some((l) => /^RUN npm ci --omit=dev\b/.test(l))).toBe(true);
    expect(DOCKERFILE).toContain('COPY --from=build /app/dist ./dist');
    expect(DOCKERFILE.some((l) => /^USER (?!root)\w+/.test(l))).toBe(true);
    expect(SERVER_CMD).toEqual(['node', 'dist/src/server.js']);
    expect(HEALTHCHECK_CMD[0]).toBe('node');
  });

  it('writes dist/ with the compiled server, the migrate script and the files they read at run time', () => {
    for (const file of ['src/server.js', 'scripts/migrate.js', 'src/keys/argon2-worker.mjs', 'drizzle/meta/_journal.json', 'openapi.yaml']) {
      expect(existsSync(join(ROOT, 'dist', file)), `dist/${file}`).toBe(true);
    }
    expect(readFileSync(join(ROOT, 'dist/openapi.yaml'), 'utf8')).toBe(readFileSync(join(ROOT, 'openapi.yaml'), 'utf8'));
  });

  it('stages a runtime without the dev dependencies (as npm ci --omit=dev would)', async () => {
    for (const dev of ['vitest', 'drizzle-kit', 'eslint', 'playwright-core', 'openapi-typescript']) {
      expect(existsSync(join(app, 'node_modules', dev)), dev).toBe(false);
    }
    const probe = await run(process.execPath, ['--input-type=module', '-e', "await import('vitest').then(() => console.log('found'), () => console.log('missing'))"], { cwd: app });
    expect(probe.stdout.trim()).toBe('missing');
  });
});

describe('the compiled server, with plain node and production dependencies only', () => {
  it('serves /healthz, /readyz, /v1 (keys hashed by the compiled argon2 worker) and /docs on the memory store; exits 0 on SIGTERM', { timeout: 90_000 }, async () => {
    const { server, url, port } = await startCompiled({ APP_ENV: 'dev', AUTH: 'off' });
    try {
      expect(await json(await fetch(`${url}/healthz`))).toEqual({ status: 200, body: { status: 'ok' } });
      // The Dockerfile's HEALTHCHECK, as Docker would run it in the container (same ADDR).
      const healthcheck = await run(process.execPath, HEALTHCHECK_CMD.slice(1), { cwd: app, env: cleanEnv({ ADDR: `:${port}` }), timeoutMs: 10_000 });
      expect(healthcheck.code, healthcheck.stderr).toBe(0);
      expect(await json(await fetch(`${url}/readyz`))).toEqual({ status: 200, body: { status: 'ready' } });
      const post = (path: string, body: unknown) => fetch(`${url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }).then(json);
      const tenant = await post('/v1/tenants', { slug: 'built', name: 'Built' });
      expect(tenant.status).toBe(201);
      const key = await post('/v1/api-keys', { tenant_id: tenant.body.id, name: 'gateway' });
      expect(key.status).toBe(201);
      const verified = await post('/v1/internal/api-keys/verify', { key: key.body.plaintext });
      expect(verified.body).toMatchObject({ valid: true, tenant_id: tenant.body.id });
      const docs = await fetch(`${url}/docs/openapi.yaml`);
      expect(docs.status).toBe(200);
      expect(await docs.text()).toBe(readFileSync(join(ROOT, 'openapi.yaml'), 'utf8'));
      const bundle = await fetch(`${url}/docs/assets/swagger-ui-bundle.js`);
      expect(bundle.status).toBe(200);
      expect((await bundle.arrayBuffer()).byteLength).toBeGreaterThan(100_000); // read it all: an unread body holds the connection open
    } finally {
      await stop(server);
    }
  });

  describe('on Postgres', () => {
    let db: TestDatabase;
    beforeAll(async () => {
      db = await provisionEmptyDatabase();
    }, 120_000);
    afterAll(async () => {
      await killChildren();
      await db?.drop();
    }, 60_000);

    it('node dist/scripts/migrate.js migrates a fresh database (idempotently), then the compiled server starts ready on it', async () => {
      const env = cleanEnv({ DATABASE_URL: db.url });

      const first = await run(process.execPath, ['dist/scripts/migrate.js'], { cwd: app, env, timeoutMs: 60_000 });
      expect(first.code, first.stderr).toBe(0);
      expect(first.stdout).toContain(`applying ${JOURNAL_TAGS.length} migration(s)`);
      expect(first.stdout).toContain(`up to date (${JOURNAL_TAGS.length} applied, 0 pending)`);

      const pool = new pg.Pool({ connectionString: db.url, max: 1 });
      try {
        expect(await migrationStatus(pool)).toEqual({ applied: JOURNAL_TAGS, pending: [] });
      } finally {
        await pool.end();
      }

      const again = await run(process.execPath, ['dist/scripts/migrate.js'], { cwd: app, env, timeoutMs: 60_000 });
      expect(again.code, again.stderr).toBe(0);
      expect(again.stdout).not.toContain('applying');
      expect(again.stdout).toContain('up to date');

      const { server, url } = await startCompiled({ APP_ENV: 'dev', AUTH: 'off', DATABASE_URL: db.url });
      try {
        expect(await json(await fetch(`${url}/readyz`))).toEqual({ status: 200, body: { status: 'ready' } });
        const catalog = await json(await fetch(`${url}/v1/catalog`));
        expect(catalog.status).toBe(200);
        expect(catalog.body.items.length).toBeGreaterThan(0);
      } finally {
        await stop(server);
      }
      // And once it is gone, the HEALTHCHECK fails.
      const healthcheck = await run(process.execPath, HEALTHCHECK_CMD.slice(1), { cwd: app, env: cleanEnv({ ADDR: `:${new URL(url).port}` }), timeoutMs: 10_000 });
      expect(healthcheck.code).toBe(1);
    }, 90_000);

    it('migrate.js exits 1 with one line when the database cannot be reached, or DATABASE_URL is missing', { timeout: 60_000 }, async () => {
      const port = await freePort();
      const down = await run(process.execPath, ['dist/scripts/migrate.js'], { cwd: app, env: cleanEnv({ DATABASE_URL: `postgres://postgres@127.0.0.1:${port}/nothing` }) });
      expect(down.code).toBe(1);
      expect(down.stderr).toMatch(/^cannot reach the database at 127\.0\.0\.1:\d+\/nothing: /);
      const unset = await run(process.execPath, ['dist/scripts/migrate.js'], { cwd: app, env: cleanEnv() });
      expect(unset.code).toBe(1);
      expect(unset.stderr).toMatch(/DATABASE_URL/);
    });
  });
});
