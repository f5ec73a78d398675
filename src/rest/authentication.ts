/**
 * Authenticates every /v1 and /trpc call before its body is read, so 401 comes before
 * 400/413/415 (API.md's precedence) on both faces of the API. The outcome travels to the
 * tRPC context in `res.locals.auth`.
 */
import type { NextFunction, Request, Response } from 'express';
import { TRPC_ERROR_CODES_BY_KEY } from '@trpc/server/rpc';
import { authenticate, type AuthOutcome } from '../auth/authenticate.js';
import type { ContextOptions } from '../context.js';
import { sendError } from './error-body.js';

export const authOf = (res: Response): AuthOutcome | undefined => res.locals.auth as AuthOutcome | undefined;

type Refusal = Extract<AuthOutcome, { ok: false }>;

/** REST: API.md's error body. */
const refuseRest = (_req: Request, res: Response, refusal: Refusal) =>
  sendError(res, { code: refusal.code, message: refusal.message });

/** tRPC: the envelope tRPC clients understand, one per call of a batch. */
function refuseTrpc(req: Request, res: Response, refusal: Refusal) {
  const status = refusal.code === 'UNAUTHORIZED' ? 401 : 503;
  const paths = req.path.replace(/^\//, '').split(',');
  const envelope = (path: string) => ({
    error: {
      message: refusal.message,
      code: TRPC_ERROR_CODES_BY_KEY[refusal.code],
      data: { code: refusal.code, httpStatus: status, path },
    },
  });
  res.status(status).json(req.query.batch ? paths.map(envelope) : envelope(paths[0] ?? ''));
}

function gate(opts: ContextOptions, refuse: (req: Request, res: Response, refusal: Refusal) => void) {
  return async (req: Request, res: Response, next: NextFunction): Promise<void> => {
    const outcome = await authenticate(req, opts.auth, opts.trustProxy);
    if (!outcome.ok) {
      if (outcome.challenge) res.setHeader('WWW-Authenticate', outcome.challenge);
      return refuse(req, res, outcome);
    }
    res.locals.auth = outcome;
    next();
  };
}

export const requireAuthentication = (opts: ContextOptions) => gate(opts, refuseRest);
export const requireTrpcAuthentication = (opts: ContextOptions) => gate(opts, refuseTrpc);
