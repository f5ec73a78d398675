/**
 * `npm run db:status`: applied vs pending migrations of the database in DATABASE_URL.
 * `npm run db:reset`: drops everything and re-applies all migrations (refused when APP_ENV=prod).
 * (`npm run db:migrate` is drizzle-kit's; it records into the same drizzle.__drizzle_migrations.)
 */
import { createPool } from '../src/db/open-store.js';
import { applyMigrations, dropSchema, migrationStatus } from '../src/db/migrations.js';

function fail(message: string): never {
  process.stderr.write(`${message}\n`);
  process.exit(1);
}

const command = process.argv[2];
if (command !== 'status' && command !== 'reset') fail('usage: tsx scripts/db.ts status|reset');

const url = process.env.DATABASE_URL;
if (!url) fail('DATABASE_URL is not set (e.g. DATABASE_URL=postgres://user@host:5432/db)');
if (!/^postgres(ql)?:\/\//.test(url) || !URL.canParse(url)) fail('DATABASE_URL must be a postgres:// URL');
if (command === 'reset' && process.env.APP_ENV === 'prod') fail('refusing to reset the database: APP_ENV=prod');

// Never print the password.
const parsed = new URL(url);
const where = `${parsed.host}${parsed.pathname}`;
const pool = createPool(url);
pool.on('error', () => {});

try {
  try {
    await pool.query('SELECT 1');
  } catch (err) {
    fail(`cannot reach the database at ${where}: ${(err as Error).message || String(err)}`);
  }
  if (command === 'reset') {
    await dropSchema(pool);
    console.log(`dropped schemas public and drizzle in ${where}`);
    await applyMigrations(pool);
  }
  const { applied, pending } = await migrationStatus(pool);
  if (command === 'reset') {
    console.log(`applied ${applied.length} migration(s): ${applied.join(', ')}`);
  } else {
    console.log(`${where}: ${applied.length} applied, ${pending.length} pending`);
    for (const tag of applied) console.log(`  applied  ${tag}`);
    for (const tag of pending) console.log(`  pending  ${tag}`);
    if (pending.length > 0) console.log('run `npm run db:migrate` to apply the pending ones');
  }
} catch (err) {
  fail(`db ${command} failed on ${where}: ${(err as Error).message || String(err)}`);
} finally {
  await pool.end();
}
