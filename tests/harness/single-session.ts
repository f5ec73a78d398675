/**
 * PGlite (the fallback Postgres when there is no TEST_DATABASE_URL and no Docker) is one
 * session behind a socket server. That server keeps a connection's messages together only
 * inside an explicit transaction: two autocommit queries on different connections can have
 * their extended-protocol messages (Parse/Bind/Execute/Sync) interleaved, which breaks both
 * ("portal \"\" does not exist", or a row read with another query's parameters). Concurrency
 * tests therefore send their requests one after another there — the outcome they check is the
 * same, it is just not a race — and race for real on a Postgres server and the memory store.
 */
import type { PostgresStore } from '../../src/db/postgres-store.js';
import type { TestServer } from './server.js';

/** True when the server's store is Postgres served by PGlite. */
export async function onPglite(server: TestServer): Promise<boolean> {
  if (server.store.kind !== 'postgres') return false;
  const { rows } = await (server.store as PostgresStore).pool.query<{ v: string }>('SELECT version() AS v');
  return /PGlite/i.test(rows[0]?.v ?? '');
}

/** Runs `n` calls of `send` all at once, or one after another when `serial`. */
export async function fire<T>(n: number, send: (i: number) => Promise<T>, serial: boolean): Promise<T[]> {
  if (!serial) return Promise.all(Array.from({ length: n }, (_, i) => send(i)));
  const out: T[] = [];
  for (let i = 0; i < n; i++) out.push(await send(i));
  return out;
}
