/** Picks the store: memory when there is no DATABASE_URL, Postgres (fully migrated) otherwise. */
import pg from 'pg';
import type { Logger } from '../log.js';
import { PostgresChangeFeed } from './change-feed.js';
import { MemoryStore } from './memory-store.js';
import { migrationStatus } from './migrations.js';
import { PostgresStore, translatePgError } from './postgres-store.js';
import { StoreUnavailableError, type Store } from './store.js';

export class PendingMigrationsError extends Error {
  override readonly name = 'PendingMigrationsError';
}

/**
 * Timeouts keep a vanished database from hanging requests: waiting for a connection ≤ 1.5 s,
 * one query ≤ 3 s (client and server side), so a request fails with 503 within ~5 s.
 */
export function createPool(databaseUrl: string, max = 10): pg.Pool {
  const pool = new pg.Pool({
    connectionString: databaseUrl,
    max,
    connectionTimeoutMillis: 1500,
    idleTimeoutMillis: 30_000,
    query_timeout: 3000,
    statement_timeout: 3000,
    keepAlive: true,
    application_name: 'tenant-registry',
  });
  // An idle client that loses its connection must not crash the process.
  pool.on('error', () => {});
  // Nor may a checked-out one (a transaction holds its client via pool.connect(), and the pool
  // drops its own error listener while a client is out): without a listener, a connection
  // reset mid-transaction is an unhandled 'error' event. The failure still reaches the
  // caller (its queries reject), and a client that is no longer queryable is discarded on
  // release.
  pool.on('connect', (client) => client.on('error', () => {}));
  return pool;
}

async function assertMigrated(pool: pg.Pool): Promise<void> {
  const { pending } = await migrationStatus(pool);
  if (pending.length > 0) {
    throw new PendingMigrationsError(
      `the database has ${pending.length} pending migration(s) (${pending.join(', ')}); run \`npm run db:migrate\` (in the production image: \`node dist/scripts/migrate.js\`) first`,
    );
  }
}

/**
 * Opens the store. A reachable database with pending migrations is refused; an unreachable
 * one is not: the server starts not ready, and becomes ready once the database answers and
 * its migrations check out (checked by /readyz's ping).
 */
export async function openStore(databaseUrl: string | undefined, log: Logger, poolMax?: number): Promise<Store> {
  if (!databaseUrl) return new MemoryStore();
  const pool = createPool(databaseUrl, poolMax);
  const store = new PostgresStore(pool, new PostgresChangeFeed(databaseUrl));
  try {
    await assertMigrated(pool);
  } catch (err) {
    if (!(translatePgError(err) instanceof StoreUnavailableError)) {
      await store.close();
      throw err;
    }
    log.warn('the database is unreachable; starting not ready until it answers', { error: (err as Error).message });
    store.deferSchemaCheck(async () => {
      try {
        await assertMigrated(pool);
      } catch (e) {
        if (e instanceof PendingMigrationsError) log.error(`not ready: ${e.message}`);
        throw e;
      }
    });
  }
  return store;
}
