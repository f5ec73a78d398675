/**
 * Requests that Node's HTTP parser rejects before any handler sees them (a malformed request
 * line or header, headers over Node's 16 KiB, a chunk extension too long, a request that took
 * too long to arrive) get the service's JSON error body like every other 4xx, instead of
 * Node's bare status line. The connection is closed after the answer: the parser cannot tell
 * where the next request would start.
 */
import type { Server } from 'node:http';
import type { Duplex } from 'node:stream';
import type { RestError } from './error-body.js';

const REASONS: Record<number, string> = { 400: 'Bad Request', 413: 'Payload Too Large' };

/** What a parser error becomes; codes and statuses stay within API.md's list. */
function answerFor(code: string | undefined): { status: 400 | 413; body: RestError } {
  switch (code) {
    case 'HPE_HEADER_OVERFLOW':
      return { status: 400, body: { code: 'BAD_REQUEST', message: 'the request headers are larger than 16 KiB' } };
    case 'HPE_CHUNK_EXTENSIONS_OVERFLOW':
      return { status: 413, body: { code: 'PAYLOAD_TOO_LARGE', message: 'a chunk extension is too large' } };
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return { status: 400, body: { code: 'BAD_REQUEST', message: 'the request took too long to arrive' } };
    default:
      return { status: 400, body: { code: 'BAD_REQUEST', message: 'malformed HTTP request' } };
  }
}

export function answerClientErrors(server: Server): void {
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
    // Nothing to answer on a connection that is gone, or one already answering.
    if (err.code === 'ECONNRESET' || !socket.writable || (socket as { _httpMessage?: { headersSent?: boolean } })._httpMessage?.headersSent) {
      socket.destroy();
      return;
    }
    const { status, body } = answerFor(err.code);
    const json = JSON.stringify(body);
    socket.end(
      `HTTP/1.1 ${status} ${REASONS[status]}\r\n` +
        'Content-Type: application/json; charset=utf-8\r\n' +
        `Content-Length: ${Buffer.byteLength(json)}\r\n` +
        'Connection: close\r\n\r\n' +
        json,
    );
  });
}
