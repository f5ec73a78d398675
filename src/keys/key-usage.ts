/**
 * Coalesces `last_used_at` updates: a valid verify only notes the time in memory; a timer
 * writes the notes in one batch every 10 s, and a key written less than 50 s ago waits for a
 * later batch. So each key costs at most about one write a minute, and last_used_at is never
 * more than 60 s behind. close() flushes everything (on shutdown).
 */
import type { Store } from '../db/store.js';

export interface KeyUsageRecorder {
  note(keyId: string, at: Date): void;
  /** Writes pending notes; `all` ignores the per-key spacing. */
  flush(all?: boolean): Promise<void>;
  close(): Promise<void>;
}

const FLUSH_EVERY_MS = 10_000;
const MIN_SPACING_MS = 50_000;

export class BatchedKeyUsage implements KeyUsageRecorder {
  private pending = new Map<string, Date>();
  private readonly lastWritten = new Map<string, number>();
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly store: Store,
    intervalMs = FLUSH_EVERY_MS,
    private readonly onError: (err: unknown) => void = () => {},
  ) {
    this.timer = setInterval(() => void this.flush(false).catch(this.onError), intervalMs);
    this.timer.unref();
  }

  note(keyId: string, at: Date): void {
    this.pending.set(keyId, at);
  }

  async flush(all = true): Promise<void> {
    const now = Date.now();
    const due: { id: string; at: Date }[] = [];
    for (const [id, at] of this.pending) {
      if (all || now - (this.lastWritten.get(id) ?? 0) >= MIN_SPACING_MS) due.push({ id, at });
    }
    for (const [id, written] of this.lastWritten) if (now - written >= MIN_SPACING_MS) this.lastWritten.delete(id);
    if (due.length === 0) return;
    for (const { id } of due) this.pending.delete(id);
    try {
      await this.store.touchApiKeys(due);
      for (const { id } of due) this.lastWritten.set(id, now);
    } catch (err) {
      for (const { id, at } of due) if (!this.pending.has(id)) this.pending.set(id, at);
      throw err;
    }
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    await this.flush(true);
  }
}
