/**
 * argon2id in a bounded pool of worker threads. A 64 MiB hash blocks its thread for
 * ~200 ms, so it never runs on the event loop; when every worker is busy and the queue is
 * full, callers get SERVICE_UNAVAILABLE instead of an ever-growing queue.
 *
 * A worker keeps its 64 MiB of WebAssembly memory after its first hash (it cannot shrink),
 * so a worker idle for `idleMs` exits and gives it back; the next job starts a new one.
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
  /** null: retired after idling (or never started); started again by the next job. */
  worker: Worker | null;
  job: Job | null;
  idle: NodeJS.Timeout | null;
}

export interface Argon2PoolOptions {
  /** Worker threads; defaults to the number of cores. */
  threads?: number;
  /** Jobs that may wait for a worker before new ones are refused. */
  maxQueue?: number;
  /** A worker idle this long exits and frees its memory (default 30 s). */
  idleMs?: number;
}

export class Argon2Pool implements KeyHasher {
  private readonly slots: Slot[] = [];
  private readonly queue: Job[] = [];
  private readonly maxQueue: number;
  private readonly idleMs: number;
  private nextId = 1;
  private closed = false;
  private started = 0;

  constructor(opts: Argon2PoolOptions = {}) {
    const threads = opts.threads ?? os.availableParallelism();
    this.maxQueue = opts.maxQueue ?? 64;
    this.idleMs = opts.idleMs ?? 30_000;
    for (let i = 0; i < threads; i++) {
      const slot: Slot = { worker: null, job: null, idle: null };
      this.start(slot);
      this.slots.push(slot);
    }
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

  /** Worker slots, running workers, busy workers and waiting jobs, for metrics and tests. */
  stats() {
    return {
      threads: this.slots.length,
      live: this.slots.filter((s) => s.worker).length,
      busy: this.slots.filter((s) => s.job).length,
      queued: this.queue.length,
    };
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const job of this.queue.splice(0)) job.reject(new Error('argon2 pool closed'));
    await Promise.all(
      this.slots.map((s) => {
        if (s.idle) clearTimeout(s.idle);
        return s.worker?.terminate();
      }),
    );
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
    if (slot.idle) clearTimeout(slot.idle);
    slot.idle = null;
    const worker = slot.worker ?? this.start(slot);
    worker.postMessage({ id: job.id, password: job.password, salt: job.salt, params: PARAMS });
  }

  /** The slot is free: the next queued job, or an idle timer that retires the worker. */
  private release(slot: Slot) {
    slot.job = null;
    const next = this.queue.shift();
    if (next) return this.dispatch(slot, next);
    if (this.closed || !slot.worker) return;
    slot.idle = setTimeout(() => {
      slot.idle = null;
      if (slot.job || !slot.worker) return;
      void slot.worker.terminate();
      slot.worker = null;
    }, this.idleMs);
    slot.idle.unref();
  }

  private start(slot: Slot): Worker {
    const worker = new Worker(WORKER_URL);
    slot.worker = worker;
    worker.unref();
    worker.on('message', (msg: { id: number; hash?: Uint8Array; error?: string }) => {
      const job = slot.job;
      if (job && job.id === msg.id) {
        if (msg.hash) job.resolve(Buffer.from(msg.hash));
        else job.reject(new Error(`argon2 failed: ${msg.error}`));
      }
      this.release(slot);
    });
    worker.on('error', (err) => {
      if (slot.worker !== worker) return;
      slot.job?.reject(err);
      slot.worker = null;
      if (this.closed) return;
      this.start(slot);
      this.release(slot);
    });
    return worker;
  }
}
