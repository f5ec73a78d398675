/**
 * The verify hot path's own lane, in front of express and the generic REST middleware.
 * Gateways call verify on every inbound request, so this lane skips express routing and
 * body parsing: it reads the body itself (any content type, ≤ 1 MiB), authenticates the
 * caller, and runs the same tRPC procedure (same schemas, same access check, same domain
 * code) through src/rest/procedure-runner.ts. The OpenAPI operation documents it as usual.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { TRPCError } from '@trpc/server';
import { authenticate } from '../auth/authenticate.js';
import type { ContextOptions, CreateContext } from '../context.js';
import { VERIFY_PATH } from '../routers/api-keys.js';
import { appRouter } from '../routers/index.js';
import { recordOf } from '../observability/http.js';
import { endThisTurn } from './coalesced-writes.js';
import { errorHeaders, fromTRPCError, type RestError, STATUS } from './error-body.js';
import { procedureRunner } from './procedure-runner.js';
import { MAX_BODY_BYTES } from './request-body.js';

/** The verify procedure itself, its whole middleware chain (src/rest/procedure-runner.ts). */
const verify = procedureRunner(appRouter.apiKeys.verify, 'apiKeys.verify');

export const isVerifyRequest = (req: IncomingMessage): boolean => {
  if (req.method !== 'POST' || !req.url) return false;
  if (req.url === VERIFY_PATH) return true;
  const end = req.url.indexOf('?');
  const path = (end < 0 ? req.url : req.url.slice(0, end)).replace(/\/$/, '');
  return path.length === VERIFY_PATH.length && path.toLowerCase() === VERIFY_PATH;
};

/**
 * The whole head in one `writeHead`, `X-Request-Id` included (see requestObserver); the
 * body goes out with the event-loop turn's other answers (src/rest/coalesced-writes.ts).
 */
function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) {
  const json = JSON.stringify(body);
  const head = ['Content-Type', 'application/json; charset=utf-8', 'Content-Length', String(Buffer.byteLength(json))];
  const requestId = recordOf(res.req)?.id;
  if (requestId) head.push('X-Request-Id', requestId);
  for (const [name, value] of Object.entries(headers)) head.push(name, value);
  res.writeHead(status, head);
  endThisTurn(res, json);
}

const sendError = (res: ServerResponse, error: RestError, headers: Record<string, string> = {}) =>
  send(res, STATUS[error.code], error, headers);

class TooLarge extends Error {}

/** The whole body, or TooLarge past 1 MiB (whatever the content type). */
function readBody(req: IncomingMessage): Promise<Buffer> {
  const declared = Number(req.headers['content-length']);
  if (declared > MAX_BODY_BYTES) return Promise.reject(new TooLarge());
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        req.removeAllListeners('data');
        req.resume();
        reject(new TooLarge());
      } else {
        chunks.push(chunk);
      }
    });
    req.on('end', () => resolve(Buffer.concat(chunks, size)));
    req.on('error', reject);
  });
}

const parseLeniently = (raw: Buffer): unknown => {
  try {
    return JSON.parse(raw.toString('utf8'));
  } catch {
    return undefined;
  }
};

export function verifyLane(createContext: CreateContext, opts: ContextOptions, onError: (err: unknown) => void) {
  return async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    try {
      // 401 comes before anything about the body (API.md's precedence).
      const auth = await authenticate(req, opts.auth, opts.trustProxy);
      if (!auth.ok) {
        req.resume();
        return sendError(res, { code: auth.code, message: auth.message }, auth.challenge ? { 'WWW-Authenticate': auth.challenge } : {});
      }
      let raw: Buffer;
      try {
        raw = await readBody(req);
      } catch (err) {
        if (err instanceof TooLarge) {
          return sendError(res, { code: 'PAYLOAD_TOO_LARGE', message: 'request body is larger than 1 MiB' }, { Connection: 'close' });
        }
        return sendError(res, { code: 'BAD_REQUEST', message: 'request body could not be read' });
      }
      const ctx = await createContext(req, 'rest', auth);
      const input = parseLeniently(raw);
      send(res, 200, await verify(ctx, input));
    } catch (err) {
      const error = err instanceof TRPCError ? err : new TRPCError({ code: 'INTERNAL_SERVER_ERROR', cause: err });
      if (error.code === 'INTERNAL_SERVER_ERROR') onError(error.cause ?? error);
      sendError(res, fromTRPCError(error), errorHeaders(error));
    }
  };
}
