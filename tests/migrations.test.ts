/**
 * The committed drizzle-kit migrations against a real Postgres: what they create, that they
 * can be dropped and re-applied, the constraints the database enforces by itself, and that
 * drizzle-kit's `migrate` and the app's migrator (scripts/db.ts) share one migration log.
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MIGRATIONS_FOLDER, applyMigrations, dropSchema, migrationStatus } from '../src/db/migrations.js';
import { provisionDatabase, provisionEmptyDatabase, type TestDatabase } from './harness/database.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

const TABLES = ['api_keys', 'audit_log', 'entitlements', 'product_requests', 'products', 'tenants'];
/** Not in API.md's list of six: the Idempotency-Key store (migration 0002). */
const INTERNAL_TABLES = ['idempotency_keys'];
const ENUMS = {
  entitlement_source: ['trial', 'sales', 'manual'],
  entitlement_status: ['trial', 'active', 'expired', 'revoked'],
  product_request_status: ['pending', 'fulfilled', 'rejected'],
  tenant_status: ['trial', 'active', 'frozen'],
};
/** API.md's default catalog. */
const DEFAULT_CATALOG = [
  { key: 'analytics', name: 'Analytics', requestable: true, trial_days: 14 },
  { key: 'automation', name: 'Automation', requestable: true, trial_days: 14 },
  { key: 'compliance', name: 'Compliance', requestable: true, trial_days: 14 },
  { key: 'enterprise-sso', name: 'Enterprise SSO', requestable: true, trial_days: 0 },
  { key: 'internal-tools', name: 'Internal tools', requestable: false, trial_days: 0 },
];

const JOURNAL_TAGS = (
  JSON.parse(readFileSync(`${MIGRATIONS_FOLDER}/meta/_journal.json`, 'utf8')) as { entries: { tag: string }[] }
).entries.map((e) => e.tag);

async function publicTables(pool: pg.Pool): Promise<string[]> {
  const { rows } = await pool.query<{ name: string }>(
    `SELECT table_name AS name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1`,
  );
  return rows.map((r) => r.name);
}

async function publicEnums(pool: pg.Pool): Promise<Record<string, string[]>> {
  const { rows } = await pool.query<{ name: string; labels: string[] }>(
    `SELECT t.typname AS name, array_agg(e.enumlabel::text ORDER BY e.enumsortorder) AS labels
       FROM pg_type t
       JOIN pg_namespace n ON n.oid = t.typnamespace
       JOIN pg_enum e ON e.enumtypid = t.oid
      WHERE n.nspname = 'public'
      GROUP BY t.typname`,
  );
  return Object.fromEntries(rows.map((r) => [r.name, r.labels]));
}

async function migrationRows(pool: pg.Pool): Promise<number> {
  const { rows } = await pool.query<{ n: number }>('SELECT count(*)::int AS n FROM drizzle.__drizzle_migrations');
  return rows[0]!.n;
}

/** The SQLSTATE and constraint of a statement that must fail. */
async function violation(pool: pg.Pool | pg.PoolClient, sql: string, params: unknown[] = []) {
  try {
    await pool.query(sql, params);
  } catch (err) {
    const e = err as { code?: string; constraint?: string };
    return { code: e.code, constraint: e.constraint };
  }
  throw new Error(`expected a constraint violation from: ${sql} ${JSON.stringify(params)}`);
}

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(args: string[], env: Record<string, string | undefined>): Promise<Run> {
  const childEnv = { ...process.env, ...env };
  for (const [k, v] of Object.entries(childEnv)) if (v === undefined) delete childEnv[k];
  return new Promise((resolve) => {
    execFile(process.execPath, args, { cwd: ROOT, env: childEnv, timeout: 60_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : null) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

const dbScript = (command: string, env: Record<string, string | undefined>) =>
  run(['--import', 'tsx', 'scripts/db.ts', command], { APP_ENV: undefined, ...env });
const drizzleKit = (command: string, env: Record<string, string | undefined>) =>
  run([`${ROOT}node_modules/drizzle-kit/bin.cjs`, command], env);

describe('migrations: apply, drop, re-apply', { timeout: 60_000 }, () => {
  let db: TestDatabase;
  let pool: pg.Pool;

  beforeAll(async () => {
    db = await provisionEmptyDatabase();
    pool = new pg.Pool({ connectionString: db.url, max: 2 });
  });
  afterAll(async () => {
    await pool?.end();
    await db?.drop();
  });

  it('an empty database has every migration pending', async () => {
    expect(await publicTables(pool)).toEqual([]);
    expect(await migrationStatus(pool)).toEqual({ applied: [], pending: JOURNAL_TAGS });
  });

  it('applying all creates the six tables and four enums, with nothing left pending', async () => {
    await applyMigrations(pool);
    expect(await publicTables(pool)).toEqual([...TABLES, ...INTERNAL_TABLES].sort());
    expect(await publicEnums(pool)).toEqual(ENUMS);
    expect(await migrationStatus(pool)).toEqual({ applied: JOURNAL_TAGS, pending: [] });
    expect(await migrationRows(pool)).toBe(JOURNAL_TAGS.length);
  });

  it('the default catalog is exactly the five products of API.md', async () => {
    const { rows } = await pool.query('SELECT key, name, requestable, trial_days FROM products ORDER BY key COLLATE "C"');
    expect(rows).toEqual(DEFAULT_CATALOG);
  });

  it('applying again is a no-op', async () => {
    await applyMigrations(pool);
    expect(await migrationRows(pool)).toBe(JOURNAL_TAGS.length);
    const { rows } = await pool.query<{ n: number }>('SELECT count(*)::int AS n FROM products');
    expect(rows[0]!.n).toBe(DEFAULT_CATALOG.length);
  });

  it('dropSchema leaves no tables, enums or migration log, and every migration pending', async () => {
    await dropSchema(pool);
    expect(await publicTables(pool)).toEqual([]);
    expect(await publicEnums(pool)).toEqual({});
    const { rows } = await pool.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public'`,
    );
    expect(rows[0]!.n).toBe(0);
    expect(await migrationStatus(pool)).toEqual({ applied: [], pending: JOURNAL_TAGS });
  });

  it('applying after a drop succeeds and restores the schema and catalog', async () => {
    await applyMigrations(pool);
    expect(await publicTables(pool)).toEqual([...TABLES, ...INTERNAL_TABLES].sort());
    expect(await publicEnums(pool)).toEqual(ENUMS);
    expect((await migrationStatus(pool)).pending).toEqual([]);
    const { rows } = await pool.query('SELECT key FROM products ORDER BY key COLLATE "C"');
    expect(rows.map((r) => r.key)).toEqual(DEFAULT_CATALOG.map((p) => p.key));
  });

  it('drizzle-kit migrate records into the same log as applyMigrations (interchangeable)', async () => {
    await dropSchema(pool);
    const migrated = await drizzleKit('migrate', { DATABASE_URL: db.url });
    expect(migrated.code, migrated.stderr + migrated.stdout).toBe(0);
    expect(await migrationStatus(pool)).toEqual({ applied: JOURNAL_TAGS, pending: [] });
    expect(await migrationRows(pool)).toBe(JOURNAL_TAGS.length);
    // The app's migrator sees nothing to do, and drizzle-kit after it neither.
    await applyMigrations(pool);
    expect(await migrationRows(pool)).toBe(JOURNAL_TAGS.length);
    const again = await drizzleKit('migrate', { DATABASE_URL: db.url });
    expect(again.code, again.stderr + again.stdout).toBe(0);
    expect(await migrationRows(pool)).toBe(JOURNAL_TAGS.length);
  });

  it('drizzle-kit migrate without DATABASE_URL fails clearly instead of picking a database', async () => {
    const res = await drizzleKit('migrate', { DATABASE_URL: undefined });
    expect(res.code).toBe(1);
    expect(res.stderr).toMatch(/DATABASE_URL: is not set/);
    const bad = await drizzleKit('migrate', { DATABASE_URL: 'mysql://x' });
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/DATABASE_URL: must be a postgres:\/\/ URL/);
  });
});

describe('scripts/db.ts (npm run db:status / db:reset)', { timeout: 60_000 }, () => {
  let db: TestDatabase;
  let pool: pg.Pool;

  beforeAll(async () => {
    db = await provisionEmptyDatabase();
    pool = new pg.Pool({ connectionString: db.url, max: 2 });
  });
  afterAll(async () => {
    await pool?.end();
    await db?.drop();
  });

  it('status lists every migration as pending on an empty database, exit 0', async () => {
    const res = await dbScript('status', { DATABASE_URL: db.url });
    expect(res.code, res.stderr).toBe(0);
    expect(res.stdout).toContain(`0 applied, ${JOURNAL_TAGS.length} pending`);
    for (const tag of JOURNAL_TAGS) expect(res.stdout).toContain(`pending  ${tag}`);
  });

  it('reset drops and re-applies everything, then status has nothing pending', async () => {
    await pool.query('CREATE TABLE public.leftover (x int)');
    const reset = await dbScript('reset', { DATABASE_URL: db.url });
    expect(reset.code, reset.stderr).toBe(0);
    expect(reset.stdout).toMatch(/dropped schemas public and drizzle/);
    expect(reset.stdout).toContain(`applied ${JOURNAL_TAGS.length} migration(s)`);
    expect(await publicTables(pool)).toEqual([...TABLES, ...INTERNAL_TABLES].sort());
    const status = await dbScript('status', { DATABASE_URL: db.url });
    expect(status.code, status.stderr).toBe(0);
    expect(status.stdout).toContain(`${JOURNAL_TAGS.length} applied, 0 pending`);
  });

  it('reset is refused when APP_ENV=prod, and nothing is dropped', async () => {
    const res = await dbScript('reset', { DATABASE_URL: db.url, APP_ENV: 'prod' });
    expect(res.code).toBe(1);
    expect(res.stderr.trim().split('\n')).toEqual(['refusing to reset the database: APP_ENV=prod']);
    expect(await publicTables(pool)).toContain('tenants');
  });

  it('a missing, non-postgres or unreachable DATABASE_URL is one clear line and exit 1', async () => {
    const [missing, mysql, down] = await Promise.all([
      dbScript('status', { DATABASE_URL: undefined }),
      dbScript('reset', { DATABASE_URL: 'mysql://x' }),
      dbScript('status', { DATABASE_URL: 'postgres://postgres:secret@127.0.0.1:1/nowhere' }),
    ]);
    expect(missing.code).toBe(1);
    expect(missing.stderr.trim()).toMatch(/^DATABASE_URL is not set/);
    expect(mysql.code).toBe(1);
    expect(mysql.stderr.trim()).toBe('DATABASE_URL must be a postgres:// URL');
    expect(down.code).toBe(1);
    expect(down.stderr.trim().split('\n')).toHaveLength(1);
    expect(down.stderr).toMatch(/^cannot reach the database at 127\.0\.0\.1:1\/nowhere/);
    expect(down.stderr).not.toContain('secret');
  });
});

describe('constraints enforced by the database', () => {
  let db: TestDatabase;
  let pool: pg.Pool;

  beforeAll(async () => {
    db = await provisionDatabase();
    pool = new pg.Pool({ connectionString: db.url, max: 4 });
  });
  afterAll(async () => {
    await pool?.end();
    await db?.drop();
  });

  /** One row in each of the six tables, in one SQL statement; returns the new tenant's id. */
  async function insertEverywhere(slug: string, product: string, prefix: string): Promise<string> {
    const { rows } = await pool.query<{ tenant_id: string }>(
      `WITH t AS (
         INSERT INTO tenants (slug, name) VALUES ($1, 'Everywhere') RETURNING id
       ), p AS (
         INSERT INTO products (key, name, requestable, trial_days) VALUES ($2, 'Scratch product', true, 7) RETURNING key
       ), e AS (
         INSERT INTO entitlements (tenant_id, product, status, source, starts_at, expires_at)
         SELECT t.id, p.key, 'trial', 'trial', now(), now() + interval '7 days' FROM t, p RETURNING id
       ), r AS (
         INSERT INTO product_requests (tenant_id, product, note) SELECT t.id, p.key, 'call me' FROM t, p RETURNING id
       ), k AS (
         INSERT INTO api_keys (tenant_id, name, prefix, hash, product)
         SELECT t.id, 'ci', $3, 'argon2id|c2FsdA==|aGFzaA==', p.key FROM t, p RETURNING id
       ), a AS (
         INSERT INTO audit_log (tenant_id, action, crud, actor_id, actor_type, occurred_at)
         SELECT t.id, 'tenant.created', 'c', 'dev', 'user', now() FROM t RETURNING id
       )
       SELECT t.id AS tenant_id FROM t, p, e, r, k, a`,
      [slug, product, prefix],
    );
    expect(rows).toHaveLength(1);
    return rows[0]!.tenant_id;
  }

  const count = async (table: string, tenantId: string) =>
    (await pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${table} WHERE tenant_id = $1`, [tenantId])).rows[0]!.n;

  it('one insert reaches all six tables, with the defaults of the schema', async () => {
    const id = await insertEverywhere('everywhere', 'scratch-one', 'bp_aaaaaaaa');
    const tenant = (await pool.query('SELECT status FROM tenants WHERE id = $1', [id])).rows[0];
    expect(tenant).toEqual({ status: 'trial' });
    const request = (await pool.query('SELECT status FROM product_requests WHERE tenant_id = $1', [id])).rows[0];
    expect(request).toEqual({ status: 'pending' });
    const key = (await pool.query('SELECT scopes, revoked_at FROM api_keys WHERE tenant_id = $1', [id])).rows[0];
    expect(key).toEqual({ scopes: [], revoked_at: null });
    const event = (await pool.query('SELECT is_failure, fields FROM audit_log WHERE tenant_id = $1', [id])).rows[0];
    expect(event).toEqual({ is_failure: false, fields: {} });
    for (const table of ['entitlements', 'product_requests', 'api_keys', 'audit_log']) expect(await count(table, id)).toBe(1);
  });

  it('deleting a tenant cascades to entitlements, product requests and API keys; audit events stay with tenant_id NULL', async () => {
    const id = await insertEverywhere('cascade-me', 'scratch-two', 'bp_bbbbbbbb');
    const { rows: events } = await pool.query<{ id: string }>('SELECT id FROM audit_log WHERE tenant_id = $1', [id]);
    expect(events).toHaveLength(1);
    await pool.query('DELETE FROM tenants WHERE id = $1', [id]);
    for (const table of ['entitlements', 'product_requests', 'api_keys', 'audit_log']) expect(await count(table, id)).toBe(0);
    const { rows } = await pool.query('SELECT tenant_id, action FROM audit_log WHERE id = $1', [events[0]!.id]);
    expect(rows).toEqual([{ tenant_id: null, action: 'tenant.created' }]);
    // The product outlives the tenant.
    expect((await pool.query(`SELECT 1 FROM products WHERE key = 'scratch-two'`)).rowCount).toBe(1);
  });

  it.each([
    ['too short', 'ab'],
    ['leading dash', '-abc'],
    ['trailing dash', 'abc-'],
    ['upper case', 'Acme'],
    ['underscore', 'ac_me'],
    ['64 characters', 'a'.repeat(64)],
  ])('the slug CHECK rejects %s (%s)', async (_why, slug) => {
    expect(await violation(pool, `INSERT INTO tenants (slug, name) VALUES ($1, 'x')`, [slug])).toEqual({
      code: '23514',
      constraint: 'tenants_slug_format',
    });
  });

  it('the slug CHECK accepts 3 and 63 characters', async () => {
    for (const slug of ['a1b', `a${'-'.repeat(61)}z`, 'z'.repeat(63)]) {
      const { rowCount } = await pool.query(`INSERT INTO tenants (slug, name) VALUES ($1, 'x')`, [slug]);
      expect(rowCount).toBe(1);
    }
    expect(await violation(pool, `INSERT INTO tenants (slug, name) VALUES ('a1b', 'dup')`)).toEqual({
      code: '23505',
      constraint: 'tenants_slug_unique',
    });
  });

  it('a tenant has at most one entitlement per product (unique index)', async () => {
    const { rows } = await pool.query<{ id: string }>(`INSERT INTO tenants (slug, name) VALUES ('one-each', 'x') RETURNING id`);
    const id = rows[0]!.id;
    const insert = `INSERT INTO entitlements (tenant_id, product, status, source, starts_at) VALUES ($1, $2, $3, $4, now())`;
    await pool.query(insert, [id, 'analytics', 'trial', 'trial']);
    await pool.query(insert, [id, 'automation', 'active', 'sales']);
    expect(await violation(pool, insert, [id, 'analytics', 'active', 'manual'])).toEqual({
      code: '23505',
      constraint: 'entitlements_tenant_product_unique',
    });
    // Another tenant may hold the same product.
    const other = (await pool.query<{ id: string }>(`INSERT INTO tenants (slug, name) VALUES ('one-each-2', 'x') RETURNING id`)).rows[0]!.id;
    await pool.query(insert, [other, 'analytics', 'trial', 'trial']);
  });

  it('API key prefixes are unique across tenants', async () => {
    const tenant = async (slug: string) =>
      (await pool.query<{ id: string }>(`INSERT INTO tenants (slug, name) VALUES ($1, 'x') RETURNING id`, [slug])).rows[0]!.id;
    const [a, b] = [await tenant('prefix-a'), await tenant('prefix-b')];
    const insert = `INSERT INTO api_keys (tenant_id, name, prefix, hash) VALUES ($1, 'k', $2, 'argon2id|x|y')`;
    await pool.query(insert, [a, 'bp_samesame']);
    expect(await violation(pool, insert, [b, 'bp_samesame'])).toEqual({ code: '23505', constraint: 'api_keys_prefix_unique' });
    expect(await violation(pool, insert, [a, 'bp_samesame'])).toEqual({ code: '23505', constraint: 'api_keys_prefix_unique' });
  });

  it('references to unknown products and enum values outside the lists are rejected', async () => {
    const id = (await pool.query<{ id: string }>(`INSERT INTO tenants (slug, name) VALUES ('refs', 'x') RETURNING id`)).rows[0]!.id;
    expect(
      await violation(pool, `INSERT INTO entitlements (tenant_id, product, status, source, starts_at) VALUES ($1, 'nope', 'trial', 'trial', now())`, [id]),
    ).toEqual({ code: '23503', constraint: 'entitlements_product_products_key_fk' });
    expect((await violation(pool, `UPDATE tenants SET status = 'deleted' WHERE id = $1`, [id])).code).toBe('22P02');
  });
});
