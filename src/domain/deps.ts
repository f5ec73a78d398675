import type { KeyHasher } from '../keys/argon2-pool.js';
import type { KeyUsageRecorder } from '../keys/key-usage.js';
import type { VerifyCache } from '../keys/verify-cache.js';
import type { Actor, Store } from '../db/store.js';

/** What domain functions need from the outside world. */
export interface Deps {
  store: Store;
  hasher: KeyHasher;
  usage: KeyUsageRecorder;
  verifyCache: VerifyCache;
}

/** Who is calling, as recorded in automatic audit events. */
export interface Principal {
  actor: Actor;
  sourceIp: string | null;
}
