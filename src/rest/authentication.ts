/**
 * Authenticates every REST call before its body is read, so 401 comes before 400/413/415
 * (API.md's precedence). The outcome travels to the tRPC context in `res.locals.auth`.
 */
import type { NextFunction, Request, Response } from 'express';
import { authenticate, type AuthOutcome } from '../auth/authenticate.js';
import type { ContextOptions } from '../context.js';
import { sendError } from './error-body.js';

export const authOf = (res: Response): AuthOutcome | undefined => res.locals.auth as AuthOutcome | undefined;

export function requireAuthentication(opts: ContextOptions) {
  return async (req: Request, res: Response, next: NextFunction): Promise<void> => {
    const outcome = await authenticate(req, opts.auth, opts.trustProxy);
    if (!outcome.ok) {
      if (outcome.challenge) res.setHeader('WWW-Authenticate', outcome.challenge);
      return sendError(res, { code: outcome.code, message: outcome.message });
    }
    res.locals.auth = outcome;
    next();
  };
}
