/** Wires the domain's dependencies from configuration, and takes them down again. */
import type { Config } from './config.js';
import { openStore } from './db/open-store.js';
import type { Deps } from './domain/deps.js';
import { Argon2Pool } from './keys/argon2-pool.js';
import { BatchedKeyUsage } from './keys/key-usage.js';
import { VerifyCache } from './keys/verify-cache.js';
import { describeError, type Logger } from './log.js';

export interface Runtime extends Deps {
  close(): Promise<void>;
}

export async function createRuntime(config: Config, log: Logger): Promise<Runtime> {
  const store = await openStore(config.DATABASE_URL, log, config.DATABASE_POOL_MAX);
  const hasher = new Argon2Pool({ threads: config.ARGON2_THREADS, maxQueue: config.ARGON2_MAX_QUEUE });
  const usage = new BatchedKeyUsage(store, 10_000, (err) => log.warn('last_used_at flush failed', describeError(err)));
  return {
    store,
    hasher,
    usage,
    verifyCache: new VerifyCache(store.changes),
    async close() {
      await usage.close().catch((err) => log.warn('last_used_at flush failed', describeError(err)));
      await hasher.close();
      await store.close();
    },
  };
}
