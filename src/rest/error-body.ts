/** REST error bodies: `{code, message, issues?}`, as API.md fixes them. */
import type { Response } from 'express';
import { TRPCError } from '@trpc/server';
import { getHTTPStatusCodeFromError } from '@trpc/server/http';
import { DomainError } from '../domain/errors.js';
import { InputIssues } from '../trpc.js';

export type RestErrorCode =
  | 'BAD_REQUEST'
  | 'UNAUTHORIZED'
  | 'FORBIDDEN'
  | 'NOT_FOUND'
  | 'METHOD_NOT_SUPPORTED'
  | 'CONFLICT'
  | 'PAYLOAD_TOO_LARGE'
  | 'UNSUPPORTED_MEDIA_TYPE'
  | 'TOO_MANY_REQUESTS'
  | 'INTERNAL_SERVER_ERROR'
  | 'SERVICE_UNAVAILABLE';

export const STATUS: Record<RestErrorCode, number> = {
  BAD_REQUEST: 400,
  UNAUTHORIZED: 401,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  METHOD_NOT_SUPPORTED: 405,
  CONFLICT: 409,
  PAYLOAD_TOO_LARGE: 413,
  UNSUPPORTED_MEDIA_TYPE: 415,
  TOO_MANY_REQUESTS: 429,
  INTERNAL_SERVER_ERROR: 500,
  SERVICE_UNAVAILABLE: 503,
};

export interface RestError {
  code: RestErrorCode;
  message: string;
  issues?: { path: (string | number)[]; message: string }[];
}

export function sendError(res: Response, error: RestError, headers: Record<string, string> = {}): void {
  res.status(STATUS[error.code]).set(headers).json(error);
}

/** Headers an error asks for: Retry-After when the domain said when to come back. */
export function errorHeaders(err: TRPCError): Record<string, string> {
  const retryAfter = err.cause instanceof DomainError ? err.cause.retryAfterSeconds : undefined;
  return retryAfter !== undefined ? { 'Retry-After': String(retryAfter) } : {};
}

/** The body and status trpc-to-openapi would give a TRPCError, for routes served beside it. */
export function fromTRPCError(err: TRPCError): RestError {
  const status = getHTTPStatusCodeFromError(err);
  const code = (Object.keys(STATUS) as RestErrorCode[]).find((c) => STATUS[c] === status) ?? 'INTERNAL_SERVER_ERROR';
  if (code === 'INTERNAL_SERVER_ERROR') return { code, message: 'Internal server error' };
  if (err.cause instanceof InputIssues) return { code, message: err.cause.message, issues: err.cause.issues };
  return { code, message: err.message };
}

export { TRPCError };
