/**
 * Requests Node's HTTP parser rejects before any handler runs (src/rest/client-errors.ts):
 * over raw sockets, each gets API.md's JSON error body and a closed connection, never Node's
 * bare status line; the server keeps serving. Once against the in-process server, once
 * against a real `src/server.ts` process (its wiring).
 */
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type TestServer } from './harness/server.js';
import { killAll, spawnServer, stopServer, untilUp, type ServerProcess } from './harness/server-process.js';

interface RawAnswer {
  status: number;
  headers: Record<string, string>;
  body: unknown;
}

/** Writes `bytes` on a fresh connection and reads until the server closes it. */
function raw(port: number, bytes: string): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', reject);
    socket.on('close', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      const [head = '', body = ''] = text.split('\r\n\r\n');
      const [statusLine = '', ...lines] = head.split('\r\n');
      const headers = Object.fromEntries(lines.map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()]));
      try {
        resolve({ status: Number(statusLine.split(' ')[1]), headers, body: JSON.parse(body) });
      } catch {
        reject(new Error(`not a JSON answer: ${JSON.stringify(text)}`));
      }
    });
    socket.setTimeout(10_000, () => socket.destroy(new Error('no answer within 10 s')));
    socket.write(bytes);
  });
}

const MALFORMED: [what: string, bytes: string, status: number, code: string][] = [
  ['a malformed request line', 'GET /v1/tenants HTTP/1.1 extra\r\nHost: x\r\n\r\n', 400, 'BAD_REQUEST'],
  ['a header without a colon', 'GET /v1/tenants HTTP/1.1\r\nHost: x\r\nNo colon here\r\n\r\n', 400, 'BAD_REQUEST'],
  ['a header name with a space', 'GET /healthz HTTP/1.1\r\nHost: x\r\nBad Name: 1\r\n\r\n', 400, 'BAD_REQUEST'],
  ['not HTTP at all', '\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\r\n\r\n', 400, 'BAD_REQUEST'],
  ['headers over 16 KiB', `GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`, 400, 'BAD_REQUEST'],
  ['a bad chunk size', 'POST /v1/internal/api-keys/verify HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n', 400, 'BAD_REQUEST'],
  [
    'a chunk extension over 16 KiB',
    `POST /v1/internal/api-keys/verify HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2;${'e'.repeat(20_000)}\r\n{}\r\n0\r\n\r\n`,
    413,
    'PAYLOAD_TOO_LARGE',
  ],
];

function expectJsonError(answer: RawAnswer, status: number, code: string) {
  expect(answer.status).toBe(status);
  expect(answer.headers['content-type']).toBe('application/json; charset=utf-8');
  expect(answer.headers.connection).toBe('close');
  expect(answer.body).toEqual({ code, message: expect.any(String) });
}

describe('requests the HTTP parser rejects get a JSON error (in-process server)', () => {
  let server: TestServer;
  let port: number;
  beforeAll(async () => {
    server = await startServer('memory');
    port = Number(new URL(server.url).port);
  });
  afterAll(() => server.close());

  for (const [what, bytes, status, code] of MALFORMED) {
    it(`${what}: ${status} ${code}, connection closed`, async () => {
      expectJsonError(await raw(port, bytes), status, code);
      expect((await server.http.get('/healthz')).status).toBe(200);
    });
  }

  it('a well-formed request over the same raw path is served as usual', async () => {
    const answer = await raw(port, 'GET /v1/no-such-thing HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    expect(answer.status).toBe(404);
    expect(answer.body).toMatchObject({ code: 'NOT_FOUND' });
  });
});

describe('requests the HTTP parser rejects get a JSON error (server process)', () => {
  let proc: ServerProcess;
  beforeAll(async () => {
    proc = await spawnServer({ DATABASE_URL: '' });
    await untilUp(proc);
  }, 60_000);
  afterAll(async () => {
    await stopServer(proc);
    await killAll();
  });

  it('a malformed request and oversized headers', async () => {
    expectJsonError(await raw(proc.port, MALFORMED[0]![1]), 400, 'BAD_REQUEST');
    expectJsonError(await raw(proc.port, MALFORMED[4]![1]), 400, 'BAD_REQUEST');
    expect((await proc.http.get('/healthz')).status).toBe(200);
  });
});
