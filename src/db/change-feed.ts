/**
 * Changes that invalidate cached verify answers, delivered to every instance:
 *   - in-process for the instance that made the change, right after its commit;
 *   - to the other instances through Postgres LISTEN/NOTIFY (the NOTIFY is sent inside the
 *     writing transaction, so it is delivered exactly when the change commits).
 * `healthy` is false while the listener is disconnected: caches must not answer then.
 * A `reset` tells subscribers that changes may have been missed (drop everything).
 */
import { EventEmitter } from 'node:events';
import pg from 'pg';

export type Change = { kind: 'tenant'; id: string } | { kind: 'api_key'; id: string } | { kind: 'reset' };

export const CHANGE_CHANNEL = 'tenant_registry_changes';

const HEARTBEAT_EVERY_MS = 5000;
const HEARTBEAT_TIMEOUT_MS = 2000;
/** How long close() waits for the listener connection to end gracefully. */
const CLOSE_TIMEOUT_MS = 1000;

export interface ChangeFeed {
  readonly healthy: boolean;
  subscribe(listener: (change: Change) => void): () => void;
  /** Delivers changes committed by this instance to its own subscribers. */
  emitLocal(changes: readonly Change[]): void;
  close(): Promise<void>;
}

/** The memory store's feed: one process, always healthy. */
export class LocalChangeFeed implements ChangeFeed {
  protected readonly emitter = new EventEmitter().setMaxListeners(0);
  healthy = true;

  subscribe(listener: (change: Change) => void): () => void {
    this.emitter.on('change', listener);
    return () => this.emitter.off('change', listener);
  }

  emitLocal(changes: readonly Change[]): void {
    for (const change of changes) this.emitter.emit('change', change);
  }

  async close(): Promise<void> {
    this.emitter.removeAllListeners();
  }
}

const isChange = (v: unknown): v is Change => {
  const c = v as Change | null;
  return !!c && (c.kind === 'reset' || ((c.kind === 'tenant' || c.kind === 'api_key') && typeof c.id === 'string'));
};

/** The Postgres feed: a dedicated LISTEN connection that reconnects by itself. */
export class PostgresChangeFeed extends LocalChangeFeed {
  private client: pg.Client | null = null;
  private closed = false;
  private retryMs = 100;
  private timer: NodeJS.Timeout | null = null;
  /**
   * A connection can hang without closing (a partition): a periodic query proves it alive,
   * and one that does not answer counts as lost, so caches stop answering within seconds.
   */
  private readonly heartbeat = setInterval(() => {
    const client = this.client;
    client?.query('SELECT 1').catch((err: unknown) => {
      this.lost(client, err);
      client.connection.stream.destroy();
    });
  }, HEARTBEAT_EVERY_MS).unref();

  constructor(
    private readonly connectionString: string,
    private readonly onError: (err: unknown) => void = () => {},
  ) {
    super();
    this.healthy = false;
    void this.connect();
  }

  /** The listener's backend pid (tests terminate it to prove recovery). */
  get backendPid(): number | null {
    return (this.client as unknown as { processID?: number } | null)?.processID ?? null;
  }

  private async connect(): Promise<void> {
    if (this.closed) return;
    const client = new pg.Client({
      connectionString: this.connectionString,
      connectionTimeoutMillis: 2000,
      query_timeout: HEARTBEAT_TIMEOUT_MS,
      keepAlive: true,
      application_name: 'tenant-registry-listener',
    });
    // Set when the connection dies, even between LISTEN's answer and the code after it (one
    // socket read can carry both LISTEN's answer and the FATAL of a terminated backend).
    let gone = false;
    client.on('error', (err) => {
      gone = true;
      this.lost(client, err);
    });
    client.on('end', () => {
      gone = true;
      this.lost(client, new Error('listener connection ended'));
    });
    client.on('notification', (msg) => {
      if (msg.channel !== CHANGE_CHANNEL || !msg.payload) return;
      try {
        const change: unknown = JSON.parse(msg.payload);
        if (isChange(change)) this.emitter.emit('change', change);
      } catch {
        // not ours
      }
    });
    try {
      await client.connect();
      await client.query(`LISTEN ${CHANGE_CHANNEL}`);
    } catch (err) {
      this.lost(client, err);
      return;
    }
    if (this.closed) return void client.end().catch(() => undefined);
    // Lost already (and a reconnect scheduled): never healthy on a dead connection.
    if (gone) return;
    this.client = client;
    this.retryMs = 100;
    // Whatever happened while we were not listening is unknown: start from nothing.
    this.emitter.emit('change', { kind: 'reset' } satisfies Change);
    this.healthy = true;
  }

  private lost(client: pg.Client, err: unknown) {
    if (this.client !== null && this.client !== client) return;
    const wasHealthy = this.healthy;
    this.healthy = false;
    this.client = null;
    client.removeAllListeners('end');
    client.end().catch(() => undefined);
    if (wasHealthy) {
      this.emitter.emit('change', { kind: 'reset' } satisfies Change);
      this.onError(err);
    }
    if (this.closed || this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.connect();
    }, this.retryMs);
    this.timer.unref();
    this.retryMs = Math.min(this.retryMs * 2, 2000);
  }

  override async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.heartbeat);
    this.healthy = false;
    if (this.timer) clearTimeout(this.timer);
    const client = this.client;
    this.client = null;
    if (client) {
      client.removeAllListeners('end');
      client.removeAllListeners('error');
      client.on('error', () => {});
      // A graceful end waits for the server to close its side, which never happens over a
      // dead network (a partition, a frozen host): give it a moment, then drop the socket, so
      // that shutdown is not held up to its deadline by an idle listener.
      let timer: NodeJS.Timeout | undefined;
      const ended = await Promise.race([
        client.end().then(
          () => true,
          () => true,
        ),
        new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), CLOSE_TIMEOUT_MS))),
      ]);
      clearTimeout(timer);
      if (!ended) client.connection.stream.destroy();
    }
    await super.close();
  }
}
