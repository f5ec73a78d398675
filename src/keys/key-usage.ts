/**
 * Coalesces `last_used_at` updates: a valid verify only notes the time in memory; a timer
 * writes the notes in one batch (at most one write per key per interval) and close()
 * flushes what is left.
 */
import type { Store } from '../db/store.js';

export interface KeyUsageRecorder {
  note(keyId: string, at: Date): void;
  flush(): Promise<void>;
  close(): Promise<void>;
}

export class BatchedKeyUsage implements KeyUsageRecorder {
  private pending = new Map<string, Date>();
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly store: Store,
    intervalMs = 10_000,
    private readonly onError: (err: unknown) => void = () => {},
  ) {
    this.timer = setInterval(() => void this.flush().catch(this.onError), intervalMs);
    this.timer.unref();
  }

  note(keyId: string, at: Date): void {
    this.pending.set(keyId, at);
  }

  async flush(): Promise<void> {
    if (this.pending.size === 0) return;
    const batch = this.pending;
    this.pending = new Map();
    try {
      await this.store.touchApiKeys([...batch].map(([id, at]) => ({ id, at })));
    } catch (err) {
      for (const [id, at] of batch) if (!this.pending.has(id)) this.pending.set(id, at);
      throw err;
    }
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    await this.flush();
  }
}
