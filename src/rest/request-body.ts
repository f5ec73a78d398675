/**
 * Request bodies for the REST API, read before trpc-to-openapi sees them, so every failure
 * has API.md's status and error body:
 *   > 1 MiB (any content type) → 413; a non-empty body that is not JSON-typed → 415;
 *   JSON that does not parse → 400. An empty body counts as `{}` (e.g. POST …/activate).
 */
import express, { type NextFunction, type Request, type Response } from 'express';
import { sendError } from './error-body.js';

export const MAX_BODY_BYTES = 1_048_576;

const readRaw = express.raw({ type: () => true, limit: MAX_BODY_BYTES });

const isJsonType = (contentType: string | undefined): boolean =>
  contentType !== undefined && /^application\/json\s*(;|$)/i.test(contentType);

/** Reads the body into a Buffer (or answers 413), whatever the content type. */
export function rawBody(req: Request, res: Response, next: NextFunction): void {
  readRaw(req, res, (err?: unknown) => {
    if (err) return bodyError(err, res);
    if (!Buffer.isBuffer(req.body)) req.body = Buffer.alloc(0);
    next();
  });
}

export function jsonBody(req: Request, res: Response, next: NextFunction): void {
  if (req.method === 'GET' || req.method === 'HEAD' || req.method === 'DELETE') {
    req.body = undefined;
    return next();
  }
  const raw = req.body as Buffer;
  if (raw.length === 0) {
    req.body = {};
    req.headers['content-type'] = 'application/json';
    return next();
  }
  if (!isJsonType(req.headers['content-type'])) {
    return sendError(res, {
      code: 'UNSUPPORTED_MEDIA_TYPE',
      message: req.headers['content-type']
        ? `content type "${req.headers['content-type']}" is not supported; send application/json`
        : 'missing content type; send application/json',
    });
  }
  try {
    req.body = JSON.parse(raw.toString('utf8'));
  } catch {
    return sendError(res, { code: 'BAD_REQUEST', message: 'request body is not valid JSON' });
  }
  // Media types are case-insensitive; trpc-to-openapi compares case-sensitively, so it is
  // given the canonical form of the type accepted above (e.g. `Application/JSON`).
  req.headers['content-type'] = 'application/json';
  next();
}

/** Query values may not be empty: every query parameter of the API has a format. */
export function nonEmptyQuery(req: Request, res: Response, next: NextFunction): void {
  const url = new URL(req.originalUrl, 'http://localhost');
  const empty = [...new Set([...url.searchParams].filter(([, v]) => v === '').map(([k]) => k))];
  if (empty.length > 0) {
    return sendError(res, {
      code: 'BAD_REQUEST',
      message: 'Input validation failed',
      issues: empty.map((k) => ({ path: [k], message: 'must not be empty' })),
    });
  }
  next();
}

export function bodyError(err: unknown, res: Response): void {
  const type = (err as { type?: string })?.type;
  if (type === 'entity.too.large') return sendError(res, { code: 'PAYLOAD_TOO_LARGE', message: 'request body is larger than 1 MiB' });
  if (type === 'encoding.unsupported' || type === 'charset.unsupported') {
    return sendError(res, { code: 'UNSUPPORTED_MEDIA_TYPE', message: 'unsupported content encoding' });
  }
  sendError(res, { code: 'BAD_REQUEST', message: 'request body could not be read' });
}
