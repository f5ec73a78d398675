import type { KeyHasher } from '../keys/argon2-pool.js';
import type { KeyUsageRecorder } from '../keys/key-usage.js';
import type { Actor, Store } from '../db/store.js';

/** What domain functions need from the outside world. */
export interface Deps {
  store: Store;
  hasher: KeyHasher;
  usage: KeyUsageRecorder;
}

/** Who is calling, as recorded in automatic audit events. */
export interface Principal {
  actor: Actor;
  sourceIp: string | null;
}
