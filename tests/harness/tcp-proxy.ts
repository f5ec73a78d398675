/**
 * A TCP proxy in front of a database, for outage tests: `cut()` destroys every live client
 * connection and resets new ones as they arrive (the port stays taken, so the outage looks
 * like a database that drops its connections); `restore()` forwards again.
 *
 *   const proxy = await TcpProxy.start(hostPort(db.url), { serializeSessions: db.kind === 'pglite' });
 *   const url = proxy.rewrite(db.url); // the same database, through the proxy
 *
 * `serializeSessions` is for PGlite: its socket server runs every connection in one shared
 * backend session and interleaves their protocol messages, so concurrent extended-protocol
 * queries clobber each other's unnamed statement ("unnamed prepared statement does not
 * exist", or silently wrong rows), and a connection dropped mid-transaction can leave the
 * session in it for good (electric-sql/pglite#1046). In that mode the proxy speaks just
 * enough of the Postgres wire protocol to hand the backend to one connection at a time, from
 * its first message until it is idle again (ReadyForQuery 'I' with nothing outstanding), and
 * a connection that goes away is rolled back and closed cleanly on the backend side. Real
 * Postgres needs none of this: there the proxy is a plain pipe.
 */
import net from 'node:net';

interface Target {
  host: string;
  port: number;
}

/** One client connection and its backend connection (serializing mode). */
interface Session {
  client: net.Socket;
  upstream: net.Socket;
  /** Bytes from the client not yet split into messages. */
  inbox: Buffer;
  started: boolean;
  /** Whole messages waiting for the backend, with the ReadyForQuery each batch will produce. */
  queued: Buffer[];
  queuedSyncs: number;
  /** ReadyForQuery messages still to come from the backend. */
  outstanding: number;
  txStatus: string;
  /** Bytes from the backend not yet split into messages. */
  backlog: Buffer;
  /** The client is gone: roll back if needed, then close the backend side. */
  clientGone: boolean;
  done: boolean;
}

const SSL_REQUEST = 80877103;

export class TcpProxy {
  private readonly sockets = new Set<net.Socket>();
  private down = false;
  /** 'hang' outage: connections stay open but nothing gets through. */
  private hung = false;
  private readonly held = new Set<net.Socket>();
  /** Serializing mode: the session that has the backend, and those waiting for it. */
  private owner: Session | null = null;
  private readonly waiting: Session[] = [];
  private readonly sessions = new Set<Session>();
  /** Connections accepted (forwarded or reset). */
  accepted = 0;
  /** Serializing mode: the longest a session held the backend, and waited for it (ms). */
  readonly stats = { maxHoldMs: 0, maxWaitMs: 0 };
  private ownedSince = 0;
  private readonly waitingSince = new Map<Session, number>();

  private constructor(
    private readonly server: net.Server,
    readonly port: number,
    private readonly target: Target,
    private readonly serialize: boolean,
  ) {}

  static async start(target: Target, opts: { serializeSessions?: boolean } = {}): Promise<TcpProxy> {
    // Half-open allowed, so that in a hang a client's FIN goes unanswered, as over a dead network.
    const server = net.createServer({ pauseOnConnect: true, allowHalfOpen: true });
    await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, '127.0.0.1', resolve));
    const proxy = new TcpProxy(server, (server.address() as net.AddressInfo).port, target, opts.serializeSessions ?? false);
    server.on('connection', (client) => proxy.accept(client));
    return proxy;
  }

  get isCut(): boolean {
    return this.down;
  }

  /** `url` with its host and port replaced by the proxy's. */
  rewrite(url: string): string {
    const u = new URL(url);
    u.hostname = '127.0.0.1';
    u.port = String(this.port);
    return u.toString();
  }

  /**
   * `reset` (default): drops every live connection, and resets new ones until restore().
   * `hang`: a black hole (a partition, a frozen host): live connections stay open but nothing
   * gets through either way, new ones are accepted and never answered; restore() then
   * resets them all (as a partition that lasted past TCP's patience would).
   */
  cut(mode: 'reset' | 'hang' = 'reset'): void {
    if (mode === 'hang') {
      this.hung = true;
      for (const s of this.sockets) this.held.add(s);
      for (const session of this.sessions) this.held.add(session.client);
      return;
    }
    this.down = true;
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
    for (const session of this.sessions) session.client.destroy();
  }

  restore(): void {
    this.down = false;
    if (this.hung) {
      this.hung = false;
      for (const s of this.held) s.destroy();
      this.held.clear();
    }
  }

  async close(): Promise<void> {
    this.cut();
    for (const session of this.sessions) session.upstream.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(client: net.Socket) {
    this.accepted++;
    client.on('error', () => {});
    if (this.down) return void client.destroy();
    if (this.hung) return void this.held.add(client);
    if (this.serialize) return this.acceptSerialized(client);
    const upstream = net.connect({ ...this.target, allowHalfOpen: true });
    upstream.on('error', () => {});
    for (const s of [client, upstream]) {
      this.sockets.add(s);
      s.once('close', () => {
        this.sockets.delete(s);
        // Either side closing takes the other down too.
        client.destroy();
        upstream.destroy();
      });
    }
    const forward = (from: net.Socket, to: net.Socket) =>
      from
        .on('data', (chunk: Buffer) => {
          if (!this.held.has(from)) to.write(chunk);
        })
        .on('end', () => {
          if (!this.held.has(from)) to.end();
        });
    forward(client, upstream);
    forward(upstream, client);
    client.resume();
  }

  // --- serializing mode ---------------------------------------------------------------

  private acceptSerialized(client: net.Socket) {
    const upstream = net.connect(this.target);
    upstream.on('error', () => {});
    const session: Session = {
      client,
      upstream,
      inbox: Buffer.alloc(0),
      started: false,
      queued: [],
      queuedSyncs: 0,
      outstanding: 0,
      txStatus: 'I',
      backlog: Buffer.alloc(0),
      clientGone: false,
      done: false,
    };
    this.sessions.add(session);
    client.on('data', (chunk: Buffer) => this.fromClient(session, chunk));
    client.on('end', () => {
      if (!this.held.has(client)) client.end();
    });
    client.once('close', () => this.clientClosed(session));
    upstream.on('data', (chunk: Buffer) => this.fromBackend(session, chunk));
    upstream.once('close', () => {
      session.done = true;
      this.sessions.delete(session);
      client.destroy();
      this.release(session);
    });
    client.resume();
  }

  private fromClient(session: Session, chunk: Buffer) {
    if (session.clientGone || this.held.has(session.client)) return;
    session.inbox = Buffer.concat([session.inbox, chunk]);
    for (;;) {
      const buf = session.inbox;
      let size: number;
      let syncs = 0;
      if (!session.started) {
        if (buf.length < 8) break;
        size = buf.readInt32BE(0);
        if (buf.readInt32BE(4) === SSL_REQUEST) {
          // Not supported here (the test URLs say sslmode=disable): refuse like a server without TLS.
          session.inbox = buf.subarray(size);
          session.client.write('N');
          continue;
        }
        syncs = 1;
      } else {
        if (buf.length < 5) break;
        size = 1 + buf.readInt32BE(1);
        const type = String.fromCharCode(buf[0]!);
        if (type === 'S' || type === 'Q') syncs = 1;
        if (type === 'X') {
          // Terminate: the client is leaving; clientClosed() closes the backend side properly.
          session.inbox = Buffer.alloc(0);
          session.client.destroy();
          return;
        }
      }
      if (buf.length < size) break;
      session.started = true;
      session.queued.push(buf.subarray(0, size));
      session.queuedSyncs += syncs;
      session.inbox = buf.subarray(size);
    }
    this.pump(session);
  }

  /** Sends the session's queued messages if it has (or can take) the backend. */
  private pump(session: Session) {
    if (session.queued.length === 0) return;
    if (this.owner === null) {
      this.owner = session;
      this.ownedSince = Date.now();
      const since = this.waitingSince.get(session);
      this.waitingSince.delete(session);
      if (since !== undefined) this.stats.maxWaitMs = Math.max(this.stats.maxWaitMs, this.ownedSince - since);
    }
    if (this.owner !== session) {
      if (!this.waiting.includes(session)) {
        this.waiting.push(session);
        if (!this.waitingSince.has(session)) this.waitingSince.set(session, Date.now());
      }
      return;
    }
    const batch = Buffer.concat(session.queued);
    session.outstanding += session.queuedSyncs;
    session.queued = [];
    session.queuedSyncs = 0;
    session.upstream.write(batch);
  }

  private fromBackend(session: Session, chunk: Buffer) {
    if (!session.clientGone && !this.held.has(session.client)) session.client.write(chunk);
    session.backlog = Buffer.concat([session.backlog, chunk]);
    while (session.backlog.length >= 5) {
      const size = 1 + session.backlog.readInt32BE(1);
      if (session.backlog.length < size) break;
      if (session.backlog[0] === 0x5a /* Z: ReadyForQuery */) {
        session.outstanding--;
        session.txStatus = String.fromCharCode(session.backlog[5]!);
      }
      session.backlog = session.backlog.subarray(size);
    }
    this.settle(session);
  }

  /** After a ReadyForQuery: hand the backend on, or wind a departed client's session down. */
  private settle(session: Session) {
    if (session.outstanding > 0) return;
    if (session.clientGone) {
      if (session.txStatus !== 'I' && !session.done) {
        const rollback = Buffer.from('ROLLBACK\0');
        const msg = Buffer.alloc(5);
        msg.write('Q', 0);
        msg.writeInt32BE(4 + rollback.length, 1);
        session.outstanding++;
        session.txStatus = 'I';
        session.upstream.write(Buffer.concat([msg, rollback]));
        return;
      }
      session.upstream.end();
      this.release(session);
      return;
    }
    if (session.txStatus === 'I') this.release(session);
  }

  private clientClosed(session: Session) {
    session.clientGone = true;
    session.queued = [];
    session.queuedSyncs = 0;
    const i = this.waiting.indexOf(session);
    if (i >= 0) this.waiting.splice(i, 1);
    if (this.owner === session) this.settle(session);
    else session.upstream.end();
  }

  private release(session: Session) {
    const i = this.waiting.indexOf(session);
    if (i >= 0) this.waiting.splice(i, 1);
    this.waitingSince.delete(session);
    if (this.owner !== session) return;
    this.owner = null;
    this.stats.maxHoldMs = Math.max(this.stats.maxHoldMs, Date.now() - this.ownedSince);
    while (this.owner === null && this.waiting.length > 0) this.pump(this.waiting.shift()!);
  }
}

/** host and port of a postgres:// URL (default port 5432). */
export function hostPort(url: string): { host: string; port: number } {
  const u = new URL(url);
  return { host: u.hostname, port: Number(u.port || 5432) };
}
