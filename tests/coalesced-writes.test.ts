/**
 * src/rest/coalesced-writes.ts: responses ended in one event-loop turn go out together at
 * its end. Real node:http servers and real sockets: every request gets its own body, a
 * response is not written before the turn ends, a client that went away meanwhile neither
 * breaks the batch nor throws, and on the service, pipelined requests keep their order.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { endThisTurn } from '../src/rest/coalesced-writes.js';
import { startServer } from './harness/server.js';

let server: Server | undefined;
afterEach(async () => {
  if (!server) return;
  server.closeAllConnections();
  await new Promise((resolve) => server!.close(resolve));
  server = undefined;
});

async function serve(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<string> {
  server = createServer(handler);
  await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

const answer = (res: ServerResponse, body: string) => {
  res.writeHead(200, ['Content-Type', 'application/json', 'Content-Length', String(Buffer.byteLength(body))]);
  endThisTurn(res, body);
};

describe('coalesced writes', () => {
  it('answers every request with its own body, under concurrency', async () => {
    const url = await serve((req, res) => answer(res, JSON.stringify({ path: req.url })));
    const paths = Array.from({ length: 64 }, (_, i) => `/r/${i}`);
    const bodies = await Promise.all(paths.map(async (path) => (await fetch(`${url}${path}`)).json()));
    expect(bodies).toEqual(paths.map((path) => ({ path })));
  });

  it('writes at the end of the turn, not before', async () => {
    const seen: { endedNow: boolean; endedAfterTurn: boolean }[] = [];
    const url = await serve((_req, res) => {
      answer(res, '{}');
      const endedNow = res.writableEnded;
      setImmediate(() => seen.push({ endedNow, endedAfterTurn: res.writableEnded }));
    });
    expect((await fetch(url)).status).toBe(200);
    await new Promise((resolve) => setImmediate(resolve));
    expect(seen).toEqual([{ endedNow: false, endedAfterTurn: true }]);
  });

  it('skips a response whose client went away, and still answers the others', async () => {
    const url = await serve((req, res) => {
      // The client of /gone is gone by the end of the turn.
      if (req.url === '/gone') req.socket.destroy();
      answer(res, JSON.stringify({ path: req.url }));
    });
    const gone = fetch(`${url}/gone`).then(
      () => 'answered',
      () => 'failed',
    );
    const others = await Promise.all(['/a', '/b', '/c'].map(async (path) => (await fetch(`${url}${path}`)).json()));
    expect(others).toEqual([{ path: '/a' }, { path: '/b' }, { path: '/c' }]);
    expect(await gone).toBe('failed');
    // And the server still serves.
    expect(await (await fetch(`${url}/after`)).json()).toEqual({ path: '/after' });
  });

  it('the service: pipelined verifies and an express request on one connection are answered in order', async () => {
    const app = await startServer('memory');
    try {
      const verify = (id: string) => {
        const body = JSON.stringify({ key: `bp_${id}` });
        return `POST /v1/internal/api-keys/verify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nX-Request-Id: ${id}\r\nContent-Length: ${body.length}\r\n\r\n${body}`;
      };
      const wire = `${verify('one')}${verify('two')}${verify('three')}GET /healthz HTTP/1.1\r\nHost: x\r\nX-Request-Id: four\r\nConnection: close\r\n\r\n`;
      const answer = await new Promise<string>((resolve, reject) => {
        const socket = connect(Number(new URL(app.url).port), '127.0.0.1');
        let text = '';
        socket.on('data', (chunk: Buffer) => (text += chunk.toString('utf8')));
        socket.on('close', () => resolve(text));
        socket.on('error', reject);
        socket.write(wire);
      });
      const ids = [...answer.matchAll(/^X-Request-Id: (.+)$/gim)].map((m) => m[1]!.trim());
      expect(ids).toEqual(['one', 'two', 'three', 'four']);
      expect(answer.match(/HTTP\/1\.1 200 OK\r\n/g)).toHaveLength(4);
      expect(answer.match(/\{"valid":false,"code":"MALFORMED"\}/g)).toHaveLength(3);
      expect(answer).toContain('{"status":"ok"}');
    } finally {
      await app.close();
    }
  });
});
