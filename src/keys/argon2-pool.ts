/**
 * argon2id in a bounded pool of worker threads. A 64 MiB hash blocks its thread for
 * ~200 ms, so it never runs on the event loop; when every worker is busy and the queue is
 * full, callers get SERVICE_UNAVAILABLE instead of an ever-growing queue.
 *
 * Stored format: `argon2id|<salt-b64>|<hash-b64>`, argon2id t=1, m=64 MiB, p=4, 32 bytes.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import os from 'node:os';
import { Worker } from 'node:worker_threads';
import { DomainError } from '../domain/errors.js';

export interface KeyHasher {
  /** Returns the stored form of `plaintext`. */
  hash(plaintext: string): Promise<string>;
  /** Constant-time check of `plaintext` against a stored form. */
  verify(plaintext: string, stored: string): Promise<boolean>;
  close(): Promise<void>;
}

const FORMAT_TAG = 'argon2id';
const PARAMS = { iterations: 1, memorySize: 64 * 1024, parallelism: 4, hashLength: 32 };
const WORKER_URL = new URL('./argon2-worker.mjs', import.meta.url);

interface Job {
  id: number;
  password: string;
  salt: Uint8Array;
  resolve: (hash: Buffer) => void;
  reject: (err: Error) => void;
}

interface Slot {
  worker: Worker;
  job: Job | null;
}

export interface Argon2PoolOptions {
  /** Worker threads; defaults to the number of cores. */
  threads?: number;
  /** Jobs that may wait for a worker before new ones are refused. */
  maxQueue?: number;
}

export class Argon2Pool implements KeyHasher {
  private readonly slots: Slot[] = [];
  private readonly queue: Job[] = [];
  private readonly maxQueue: number;
  private nextId = 1;
  private closed = false;
  private started = 0;

  constructor(opts: Argon2PoolOptions = {}) {
    const threads = opts.threads ?? os.availableParallelism();
    this.maxQueue = opts.maxQueue ?? 64;
    for (let i = 0; i < threads; i++) this.slots.push(this.spawn());
  }

  async hash(plaintext: string): Promise<string> {
    const salt = randomBytes(16);
    const hash = await this.run(plaintext, salt);
    return `${FORMAT_TAG}|${salt.toString('base64')}|${hash.toString('base64')}`;
  }

  async verify(plaintext: string, stored: string): Promise<boolean> {
    const [tag, saltB64, hashB64] = stored.split('|');
    if (tag !== FORMAT_TAG || !saltB64 || !hashB64) return false;
    const expected = Buffer.from(hashB64, 'base64');
    const actual = await this.run(plaintext, Buffer.from(saltB64, 'base64'));
    return actual.length === expected.length && timingSafeEqual(actual, expected);
  }

  /** argon2 computations handed to a worker so far (refused jobs are not counted). */
  get runs(): number {
    return this.started;
  }

  /** Busy workers and waiting jobs, for metrics and tests. */
  stats() {
    return { threads: this.slots.length, busy: this.slots.filter((s) => s.job).length, queued: this.queue.length };
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const job of this.queue.splice(0)) job.reject(new Error('argon2 pool closed'));
    await Promise.all(this.slots.map((s) => s.worker.terminate()));
  }

  private run(password: string, salt: Uint8Array): Promise<Buffer> {
    if (this.closed) return Promise.reject(new Error('argon2 pool closed'));
    return new Promise((resolve, reject) => {
      const job: Job = { id: this.nextId++, password, salt, resolve, reject };
      const idle = this.slots.find((s) => !s.job);
      if (idle) return this.dispatch(idle, job);
      if (this.queue.length >= this.maxQueue) {
        return reject(new DomainError('SERVICE_UNAVAILABLE', 'key hashing is saturated; retry shortly', undefined, 1));
      }
      this.queue.push(job);
    });
  }

  private dispatch(slot: Slot, job: Job) {
    this.started++;
    slot.job = job;
    slot.worker.postMessage({ id: job.id, password: job.password, salt: job.salt, params: PARAMS });
  }

  private spawn(): Slot {
    const slot: Slot = { worker: new Worker(WORKER_URL), job: null };
    slot.worker.unref();
    slot.worker.on('message', (msg: { id: number; hash?: Uint8Array; error?: string }) => {
      const job = slot.job;
      slot.job = null;
      if (job && job.id === msg.id) {
        if (msg.hash) job.resolve(Buffer.from(msg.hash));
        else job.reject(new Error(`argon2 failed: ${msg.error}`));
      }
      const next = this.queue.shift();
      if (next) this.dispatch(slot, next);
    });
    slot.worker.on('error', (err) => {
      slot.job?.reject(err);
      slot.job = null;
      if (this.closed) return;
      const index = this.slots.indexOf(slot);
      if (index >= 0) this.slots[index] = this.spawn();
      const next = this.queue.shift();
      if (next && index >= 0) this.dispatch(this.slots[index]!, next);
    });
    return slot;
  }
}
