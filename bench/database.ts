/**
 * A fresh database for one bench run on the Postgres of BENCH_DATABASE_URL (an admin URL):
 * created as tr_bench_<random>, migrated with the committed migrations, dropped at the end.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { applyMigrations } from '../src/db/migrations.js';

export const DEFAULT_ADMIN_URL = 'postgres://postgres@127.0.0.1:5432/test';

export interface BenchDatabase {
  name: string;
  url: string;
  drop(): Promise<void>;
}

async function onAdmin<T>(adminUrl: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: adminUrl });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

export async function createBenchDatabase(adminUrl: string): Promise<BenchDatabase> {
  const name = `tr_bench_${randomBytes(6).toString('hex')}`;
  await onAdmin(adminUrl, (c) => c.query(`CREATE DATABASE ${name}`));
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  const db: BenchDatabase = {
    name,
    url: url.toString(),
    drop: () => onAdmin(adminUrl, (c) => c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)).then(() => undefined),
  };
  const pool = new pg.Pool({ connectionString: db.url, max: 1 });
  try {
    await applyMigrations(pool);
  } catch (err) {
    await db.drop().catch(() => undefined);
    throw err;
  } finally {
    await pool.end();
  }
  return db;
}

/** A plain pool for the direct-SQL baselines: the same size as the server's (max 10). */
export function baselinePool(url: string): pg.Pool {
  const pool = new pg.Pool({ connectionString: url, max: 10, application_name: 'tr-bench-baseline' });
  // An idle connection closed under the pool (the database dropped, say) must not crash the run.
  pool.on('error', () => {});
  return pool;
}
