/** Starts the real app on a loopback port, over the memory store or a fresh Postgres database. */
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { createServer } from 'node:http';
import { answerClientErrors } from '../../src/rest/client-errors.js';
import { createRequestHandler } from '../../src/app.js';
import type { Authenticator } from '../../src/auth/authenticate.js';
import { createPool } from '../../src/db/open-store.js';
import { MemoryStore } from '../../src/db/memory-store.js';
import { PostgresChangeFeed } from '../../src/db/change-feed.js';
import { PostgresStore } from '../../src/db/postgres-store.js';
import type { Store } from '../../src/db/store.js';
import type { Deps } from '../../src/domain/deps.js';
import { Argon2Pool, type Argon2PoolOptions } from '../../src/keys/argon2-pool.js';
import { BatchedKeyUsage } from '../../src/keys/key-usage.js';
import { VerifyCache } from '../../src/keys/verify-cache.js';
import { createLogger } from '../../src/log.js';
import { Http } from './http.js';

export type StoreKind = 'memory' | 'postgres';

export interface TestServer {
  url: string;
  http: Http;
  deps: Deps;
  store: Store;
  close(): Promise<void>;
}

export interface StartOptions {
  /** Required for the postgres store: a migrated database. */
  databaseUrl?: string;
  trustProxy?: boolean;
  /** Authentication; off (every caller is the dev platform-admin) unless given. */
  auth?: Authenticator;
  /** The argon2 pool's size and queue bound (default: 2 threads, the pool's default queue). */
  argon2?: Argon2PoolOptions;
  /** How often the last_used_at batcher writes by itself (default 60 s). */
  usageFlushMs?: number;
  /** Serve this store instead of opening one (e.g. a test decorator); closed with the server. */
  store?: Store;
}

export async function startServer(kind: StoreKind, opts: StartOptions = {}): Promise<TestServer> {
  let store: Store;
  if (opts.store) {
    store = opts.store;
  } else if (kind === 'memory') {
    store = new MemoryStore();
  } else {
    if (!opts.databaseUrl) throw new Error('startServer(postgres) needs a databaseUrl');
    const pool = createPool(opts.databaseUrl, Number(process.env.DATABASE_POOL_MAX) || undefined);
    pool.on('error', () => {});
    store = new PostgresStore(pool, new PostgresChangeFeed(opts.databaseUrl));
  }
  const hasher = new Argon2Pool({ threads: 2, ...opts.argon2 });
  const usage = new BatchedKeyUsage(store, opts.usageFlushMs ?? 60_000);
  const deps: Deps = { store, hasher, usage, verifyCache: new VerifyCache(store.changes) };
  const handler = createRequestHandler({ deps, log: createLogger('silent'), trustProxy: opts.trustProxy ?? false, auth: opts.auth ?? { mode: 'off' } });
  const server: Server = await new Promise((resolve) => {
    const s = createServer(handler);
    answerClientErrors(s);
    s.listen(0, '127.0.0.1', () => resolve(s));
  });
  const { port } = server.address() as AddressInfo;
  const url = `http://127.0.0.1:${port}`;
  return {
    url,
    http: new Http(url),
    deps,
    store,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await usage.close();
      await hasher.close();
      await store.close();
    },
  };
}
