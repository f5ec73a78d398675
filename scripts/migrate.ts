/**
 * Applies the pending migrations of drizzle/ to the database in DATABASE_URL, with
 * drizzle-orm's migrator (no drizzle-kit, no tsx): the production image's init container runs
 *
 *   node dist/scripts/migrate.js        (npm run migrate:prod)
 *
 * and the servers start once it has exited 0. Safe to run from several pods at once: the run
 * holds a Postgres advisory lock, so one applies the migrations and the others then find
 * nothing pending. Exits 1, with one line on stderr, when the database cannot be reached or
 * a migration fails (an init container is then restarted with back-off).
 */
import pg from 'pg';
import { applyMigrations, migrationStatus } from '../src/db/migrations.js';

/** Any constant shared by every copy of this script ("tenant-registry migrate"). */
const LOCK_KEY = 7_416_812_374;

function fail(message: string): never {
  process.stderr.write(`${message}\n`);
  process.exit(1);
}

const url = process.env.DATABASE_URL;
if (!url) fail('invalid configuration: DATABASE_URL: is not set (e.g. DATABASE_URL=postgres://user@host:5432/db)');
if (!/^postgres(ql)?:\/\//.test(url) || !URL.canParse(url)) fail('invalid configuration: DATABASE_URL: must be a postgres:// URL');

// Never print the password.
const parsed = new URL(url);
const where = `${parsed.host}${parsed.pathname}`;

// Not the server's pool: migrations may take longer than its 3 s statement timeout.
const pool = new pg.Pool({ connectionString: url, max: 2, connectionTimeoutMillis: 10_000, application_name: 'tenant-registry-migrate' });
pool.on('error', () => {});

let lock: pg.PoolClient | undefined;
try {
  try {
    lock = await pool.connect();
  } catch (err) {
    fail(`cannot reach the database at ${where}: ${(err as Error).message || String(err)}`);
  }
  await lock.query('SELECT pg_advisory_lock($1)', [LOCK_KEY]);
  const before = await migrationStatus(pool);
  if (before.pending.length === 0) {
    console.log(`${where}: up to date (${before.applied.length} applied, 0 pending)`);
  } else {
    console.log(`${where}: applying ${before.pending.length} migration(s): ${before.pending.join(', ')}`);
    await applyMigrations(pool);
    const after = await migrationStatus(pool);
    if (after.pending.length > 0) fail(`${where}: still pending after migrating: ${after.pending.join(', ')}`);
    console.log(`${where}: up to date (${after.applied.length} applied, 0 pending)`);
  }
} catch (err) {
  fail(`migrate failed on ${where}: ${(err as Error).message || String(err)}`);
} finally {
  lock?.release();
  await pool.end();
}
