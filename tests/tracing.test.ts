/**
 * Traces: the real server (a child process, on the Postgres store) with
 * OTEL_EXPORTER_OTLP_ENDPOINT pointing at a tiny OTLP/HTTP receiver on loopback. One request
 * must arrive there as one trace: the HTTP server span, the tRPC procedure's span under it,
 * and the SQL spans of pg under that. The exporter speaks its default protocol
 * (http/protobuf), decoded here by a few lines of protobuf; JSON is understood too.
 */
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createRequire } from 'node:module';
import { trace } from '@opentelemetry/api';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.js';
import { tracing } from '../src/observability/tracing.js';
import { provisionDatabase, type TestDatabase } from './harness/database.js';
import { killAll, spawnServer, untilUp, type ServerProcess } from './harness/server-process.js';
import { startServer } from './harness/server.js';

interface ReceivedSpan {
  traceId: string;
  spanId: string;
  parentSpanId: string;
  name: string;
  /** OTLP SpanKind: 1 internal, 2 server, 3 client. */
  kind: number;
  attributes: Record<string, string | number | boolean>;
  service: string | undefined;
}

// --- just enough protobuf to read an ExportTraceServiceRequest -------------------------------

type Field = { no: number; wire: number; value: number | Buffer };

function varint(buf: Buffer, at: number): [number, number] {
  let value = 0;
  let scale = 1;
  for (;;) {
    const byte = buf[at++]!;
    value += (byte & 0x7f) * scale;
    scale *= 128;
    if (byte < 0x80) return [value, at];
  }
}

function fields(buf: Buffer): Field[] {
  const out: Field[] = [];
  let at = 0;
  while (at < buf.length) {
    let key: number;
    [key, at] = varint(buf, at);
    const no = Math.floor(key / 8);
    const wire = key & 7;
    if (wire === 0) {
      let v: number;
      [v, at] = varint(buf, at);
      out.push({ no, wire, value: v });
    } else if (wire === 1) {
      out.push({ no, wire, value: buf.subarray(at, at + 8) });
      at += 8;
    } else if (wire === 2) {
      let len: number;
      [len, at] = varint(buf, at);
      out.push({ no, wire, value: buf.subarray(at, at + len) });
      at += len;
    } else if (wire === 5) {
      out.push({ no, wire, value: buf.subarray(at, at + 4) });
      at += 4;
    } else {
      throw new Error(`unexpected wire type ${wire}`);
    }
  }
  return out;
}

const all = (msg: Field[], no: number) => msg.filter((f) => f.no === no).map((f) => f.value);
const one = (msg: Field[], no: number) => msg.find((f) => f.no === no)?.value;
const bytesOf = (v: unknown) => (Buffer.isBuffer(v) ? v : Buffer.alloc(0));

function anyValue(msg: Field[]): string | number | boolean {
  const s = one(msg, 1);
  if (s !== undefined) return bytesOf(s).toString('utf8');
  const b = one(msg, 2);
  if (b !== undefined) return b === 1;
  const i = one(msg, 3);
  if (i !== undefined) return i as number;
  const d = one(msg, 4);
  if (d !== undefined) return bytesOf(d).readDoubleLE(0);
  return '';
}

function attributesOf(list: unknown[]): Record<string, string | number | boolean> {
  const out: Record<string, string | number | boolean> = {};
  for (const kv of list) {
    const f = fields(bytesOf(kv));
    out[bytesOf(one(f, 1)).toString('utf8')] = anyValue(fields(bytesOf(one(f, 2))));
  }
  return out;
}

function decodeProtobuf(body: Buffer): ReceivedSpan[] {
  const spans: ReceivedSpan[] = [];
  for (const rs of all(fields(body), 1)) {
    const resourceSpans = fields(bytesOf(rs));
    const resource = one(resourceSpans, 1);
    const service = resource ? attributesOf(all(fields(bytesOf(resource)), 1))['service.name'] : undefined;
    for (const ss of all(resourceSpans, 2)) {
      for (const s of all(fields(bytesOf(ss)), 2)) {
        const span = fields(bytesOf(s));
        spans.push({
          traceId: bytesOf(one(span, 1)).toString('hex'),
          spanId: bytesOf(one(span, 2)).toString('hex'),
          parentSpanId: bytesOf(one(span, 4)).toString('hex'),
          name: bytesOf(one(span, 5)).toString('utf8'),
          kind: (one(span, 6) as number | undefined) ?? 0,
          attributes: attributesOf(all(span, 9)),
          service: service === undefined ? undefined : String(service),
        });
      }
    }
  }
  return spans;
}

function decodeJson(body: Buffer): ReceivedSpan[] {
  const doc = JSON.parse(body.toString('utf8')) as any;
  const value = (v: any) => v?.stringValue ?? (v?.intValue !== undefined ? Number(v.intValue) : (v?.boolValue ?? v?.doubleValue ?? ''));
  const attrs = (list: any[] = []) => Object.fromEntries(list.map((a) => [a.key, value(a.value)]));
  return (doc.resourceSpans ?? []).flatMap((rs: any) =>
    (rs.scopeSpans ?? []).flatMap((ss: any) =>
      (ss.spans ?? []).map((s: any) => ({
        traceId: s.traceId,
        spanId: s.spanId,
        parentSpanId: s.parentSpanId ?? '',
        name: s.name,
        kind: s.kind,
        attributes: attrs(s.attributes),
        service: attrs(rs.resource?.attributes)['service.name'],
      })),
    ),
  );
}

// --- the receiver -----------------------------------------------------------------------------

class OtlpReceiver {
  readonly spans: ReceivedSpan[] = [];
  readonly contentTypes = new Set<string>();
  exports = 0;
  private constructor(private readonly server: Server) {}

  static async start(): Promise<OtlpReceiver> {
    const server = createServer();
    const receiver = new OtlpReceiver(server);
    server.on('request', (req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        if (req.method !== 'POST' || req.url !== '/v1/traces') {
          res.writeHead(404).end();
          return;
        }
        const type = String(req.headers['content-type'] ?? '');
        receiver.contentTypes.add(type);
        receiver.exports++;
        const body = Buffer.concat(chunks);
        receiver.spans.push(...(type.includes('json') ? decodeJson(body) : decodeProtobuf(body)));
        // An empty ExportTraceServiceResponse is valid in either encoding.
        if (type.includes('json')) res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
        else res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end();
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return receiver;
  }

  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  trace(traceId: string): ReceivedSpan[] {
    return this.spans.filter((s) => s.traceId === traceId);
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/** A W3C traceparent with a fresh trace id, so the test finds its own request's spans. */
function traceparent() {
  const traceId = randomBytes(16).toString('hex');
  const parentId = randomBytes(8).toString('hex');
  return { traceId, parentId, header: `00-${traceId}-${parentId}-01` };
}

async function spansOf(receiver: OtlpReceiver, traceId: string, done: (spans: ReceivedSpan[]) => boolean, ms = 15_000) {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    const spans = receiver.trace(traceId);
    if (done(spans)) return spans;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return receiver.trace(traceId);
}

const SERVER = 2;

describe('traces over OTLP/HTTP [postgres, real server process]', { timeout: 120_000 }, () => {
  let db: TestDatabase;
  let receiver: OtlpReceiver;
  let server: ServerProcess;

  beforeAll(async () => {
    db = await provisionDatabase();
    receiver = await OtlpReceiver.start();
    server = await spawnServer({
      DATABASE_URL: db.url,
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
      OTEL_SERVICE_NAME: 'tenant-registry-under-test',
      // Export quickly rather than every 5 s.
      OTEL_BSP_SCHEDULE_DELAY: '100',
    });
    await untilUp(server, 60_000);
  }, 120_000);

  afterAll(async () => {
    await killAll();
    await receiver?.close();
    await db?.drop();
  });

  it('one REST request arrives as one trace: HTTP span → tRPC procedure span → SQL spans', async () => {
    const tp = traceparent();
    const slug = `trace-${randomBytes(4).toString('hex')}`;
    const res = await server.http.post('/v1/tenants', { slug, name: 'Traced' }, { headers: { traceparent: tp.header } });
    expect(res.status).toBe(201);

    const spans = await spansOf(receiver, tp.traceId, (s) => s.some((x) => x.kind === SERVER) && s.some((x) => x.name.startsWith('pg.')));
    const names = spans.map((s) => s.name);
    const http = spans.find((s) => s.kind === SERVER);
    expect(http, `spans of the trace: ${names.join(', ')}`).toBeDefined();
    expect(http!.name).toBe('POST /v1/tenants');
    expect(http!.parentSpanId).toBe(tp.parentId); // continues the caller's trace
    expect(http!.attributes).toMatchObject({
      'http.request.method': 'POST',
      'http.route': '/v1/tenants',
      'http.response.status_code': 201,
      'request.id': res.headers.get('x-request-id'),
    });
    expect(http!.service).toBe('tenant-registry-under-test');

    const procedure = spans.find((s) => s.name === 'trpc tenants.create');
    expect(procedure, `spans of the trace: ${names.join(', ')}`).toBeDefined();
    expect(procedure!.parentSpanId).toBe(http!.spanId);
    expect(procedure!.attributes).toMatchObject({ 'rpc.system': 'trpc', 'rpc.method': 'tenants.create', 'trpc.transport': 'rest' });

    // SQL spans sit under the procedure (directly, or under pg-pool's connect span).
    const byId = new Map(spans.map((s) => [s.spanId, s]));
    const underProcedure = (s: ReceivedSpan) => {
      for (let p = byId.get(s.parentSpanId); p; p = byId.get(p.parentSpanId)) if (p === procedure) return true;
      return false;
    };
    const sql = spans.filter((s) => s.name.startsWith('pg.query'));
    expect(sql.length, `spans of the trace: ${names.join(', ')}`).toBeGreaterThan(0);
    expect(sql.every(underProcedure)).toBe(true);
    const statements = sql.map((s) => String(s.attributes['db.query.text'] ?? s.attributes['db.statement'] ?? ''));
    expect(statements.some((q) => /insert into "tenants"/i.test(q)), statements.join('\n')).toBe(true);
    // Parameter values are never recorded: the slug is a bound value, not part of any attribute.
    expect(JSON.stringify(sql.map((s) => s.attributes))).not.toContain(slug);
    expect(receiver.contentTypes.has('application/x-protobuf')).toBe(true);
  });

  it('the verify lane (no express) gets its HTTP and procedure spans too', async () => {
    const tp = traceparent();
    const res = await server.http.post('/v1/internal/api-keys/verify', { key: 'not-a-key' }, { headers: { traceparent: tp.header } });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ valid: false, code: 'MALFORMED' });
    const spans = await spansOf(receiver, tp.traceId, (s) => s.some((x) => x.kind === SERVER) && s.some((x) => x.name.startsWith('trpc ')));
    const http = spans.find((s) => s.kind === SERVER);
    expect(http?.name).toBe('POST /v1/internal/api-keys/verify');
    const procedure = spans.find((s) => s.name === 'trpc apiKeys.verify');
    expect(procedure?.parentSpanId).toBe(http?.spanId);
  });

  it('a tRPC call is traced the same way', async () => {
    const tp = traceparent();
    const input = encodeURIComponent(JSON.stringify({ id: '00000000-0000-0000-0000-0000000000ff' }));
    const res = await server.http.get(`/trpc/tenants.get?input=${input}`, { headers: { traceparent: tp.header } });
    expect(res.status).toBe(404);
    const spans = await spansOf(receiver, tp.traceId, (s) => s.some((x) => x.kind === SERVER) && s.some((x) => x.name.startsWith('pg.query')));
    const http = spans.find((s) => s.kind === SERVER);
    expect(http?.name).toBe('GET /trpc/tenants.get');
    const procedure = spans.find((s) => s.name === 'trpc tenants.get');
    expect(procedure?.attributes).toMatchObject({ 'trpc.transport': 'trpc', 'trpc.error_code': 'NOT_FOUND' });
    expect(spans.some((s) => s.name.startsWith('pg.query'))).toBe(true);
  });
});

describe('without OTEL_EXPORTER_OTLP_ENDPOINT (the default)', () => {
  it('tracing is off: no SDK loaded, no tracer provider, requests served without spans', async () => {
    const app = await startServer('memory');
    try {
      const res = await app.http.get('/healthz', { headers: { traceparent: traceparent().header } });
      expect(res.status).toBe(200);
      expect(tracing).toBeNull();
      // The global API has no provider behind it: every tracer is the no-op one.
      const provider = trace.getTracerProvider() as { getDelegate?: () => object };
      expect(provider.getDelegate?.().constructor.name).toBe('NoopTracerProvider');
      const loaded = Object.keys(createRequire(import.meta.url).cache);
      expect(loaded.some((file) => file.includes('prom-client'))).toBe(true); // the list does show what was loaded
      expect(loaded.filter((file) => /@opentelemetry[\\/](sdk-|instrumentation|exporter)/.test(file))).toEqual([]);
      expect(loadConfig({}).tracing).toBe(false);
      expect(loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' }).tracing).toBe(true);
      expect(() => loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'collector:4318' })).toThrow(/OTEL_EXPORTER_OTLP_ENDPOINT/);
      expect(loadConfig({}).OTEL_SERVICE_NAME).toBe('tenant-registry');
    } finally {
      await app.close();
    }
  });
});
