/** Picks the store: memory when there is no DATABASE_URL, Postgres (fully migrated) otherwise. */
import pg from 'pg';
import { MemoryStore } from './memory-store.js';
import { migrationStatus } from './migrations.js';
import { PostgresChangeFeed } from './change-feed.js';
import { PostgresStore } from './postgres-store.js';
import type { Store } from './store.js';

export class PendingMigrationsError extends Error {
  override readonly name = 'PendingMigrationsError';
}

export function createPool(databaseUrl: string): pg.Pool {
  return new pg.Pool({
    connectionString: databaseUrl,
    max: 10,
    connectionTimeoutMillis: 5000,
    idleTimeoutMillis: 30_000,
    statement_timeout: 10_000,
    application_name: 'tenant-registry',
  });
}

export async function openStore(databaseUrl: string | undefined): Promise<Store> {
  if (!databaseUrl) return new MemoryStore();
  const pool = createPool(databaseUrl);
  // An idle client that loses its connection must not crash the process.
  pool.on('error', () => {});
  try {
    const { pending } = await migrationStatus(pool);
    if (pending.length > 0) {
      throw new PendingMigrationsError(
        `the database has ${pending.length} pending migration(s) (${pending.join(', ')}); run \`npm run db:migrate\` first`,
      );
    }
  } catch (err) {
    await pool.end();
    throw err;
  }
  return new PostgresStore(pool, new PostgresChangeFeed(databaseUrl));
}
