/**
 * The argon2 pool's idle workers exit (a worker keeps its 64 MiB of WebAssembly memory after
 * its first hash) and the next job starts a new one; hashes made before still verify.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { Argon2Pool } from '../src/keys/argon2-pool.js';

const pool = new Argon2Pool({ threads: 2, idleMs: 200 });
afterAll(() => pool.close());

async function until(check: () => boolean, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('condition not reached');
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

describe('argon2 pool: idle workers exit and come back', () => {
  it('retires idle workers, starts them again for the next job, and hashes still verify', async () => {
    expect(pool.stats()).toMatchObject({ threads: 2, live: 2, busy: 0, queued: 0 });
    const [a, b, c] = await Promise.all(['key-a', 'key-b', 'key-c'].map((k) => pool.hash(k)));
    expect(pool.runs).toBe(3);
    await until(() => pool.stats().live === 0);
    expect(pool.stats()).toMatchObject({ threads: 2, live: 0, busy: 0, queued: 0 });

    // One job starts one worker; a burst starts both and queues the rest.
    expect(await pool.verify('key-a', a!)).toBe(true);
    expect(pool.stats().live).toBe(1);
    const burst = Promise.all([pool.verify('key-b', b!), pool.verify('key-c', c!), pool.verify('key-x', a!), pool.verify('key-a', c!)]);
    // Judged as the burst is handed over: once it is done, a worker that finished early may
    // already have been idle for idleMs and exited (a loaded machine hashes slowly).
    expect(pool.stats()).toMatchObject({ live: 2, busy: 2, queued: 2 });
    expect(await burst).toEqual([true, true, false, false]);
    expect(pool.stats()).toMatchObject({ busy: 0, queued: 0 });
    expect(pool.runs).toBe(8);
    await until(() => pool.stats().live === 0);
  });

  it('a closed pool refuses work and leaves no timer behind', async () => {
    const short = new Argon2Pool({ threads: 1, idleMs: 60_000 });
    await short.hash('x');
    await short.close();
    await expect(short.hash('y')).rejects.toThrow('argon2 pool closed');
  });
});
