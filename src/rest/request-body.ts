/**
 * Request bodies for the REST API, read before trpc-to-openapi sees them, so every failure
 * has API.md's status and error body:
 *   > 1 MiB (any content type) → 413; a non-empty body that is not JSON-typed → 415;
 *   JSON that does not parse, or nests deeper than MAX_JSON_DEPTH → 400. An empty body
 *   counts as `{}` (e.g. POST …/activate).
 */
import express, { type NextFunction, type Request, type Response } from 'express';
import { sendError } from './error-body.js';

export const MAX_BODY_BYTES = 1_048_576;

/**
 * No input of the API nests past three levels. Far deeper JSON (thousands of levels, well
 * under 1 MiB) parses, but tRPC serialises the parsed body again, and JSON.stringify then
 * overflows the stack: a 500. Such bodies are refused up front instead.
 */
export const MAX_JSON_DEPTH = 100;

/** Whether JSON text opens more than `max` arrays/objects at once (strings skipped); linear. */
export function nestsDeeperThan(text: string, max: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++; // backslash: skip the escaped character
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) {
      inString = true;
    } else if (c === 0x7b || c === 0x5b) {
      if (++depth > max) return true;
    } else if (c === 0x7d || c === 0x5d) {
      depth--;
    }
  }
  return false;
}

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
  const text = raw.toString('utf8');
  if (nestsDeeperThan(text, MAX_JSON_DEPTH)) {
    return sendError(res, { code: 'BAD_REQUEST', message: `request body nests more than ${MAX_JSON_DEPTH} levels deep` });
  }
  try {
    req.body = JSON.parse(text);
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
