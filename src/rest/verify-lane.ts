/**
 * The verify hot path's own lane, in front of the generic REST middleware. Verify answers
 * 200 for any body whatever its content type, which trpc-to-openapi would refuse (415/400),
 * so this lane reads the body itself, parses it leniently and calls the same tRPC
 * procedure (same schemas, same code) through a server-side caller.
 */
import type { Request, Response } from 'express';
import { TRPCError } from '@trpc/server';
import type { Context } from '../trpc.js';
import { appRouter } from '../routers/index.js';
import { createCallerFactory } from '../trpc.js';
import { errorHeaders, fromTRPCError, sendError } from './error-body.js';

const createCaller = createCallerFactory(appRouter);

const parseLeniently = (raw: Buffer): unknown => {
  try {
    return JSON.parse(raw.toString('utf8'));
  } catch {
    return undefined;
  }
};

export function verifyLane(createContext: (req: Request, res: Response) => Promise<Context>) {
  return async (req: Request, res: Response): Promise<void> => {
    try {
      const caller = createCaller(await createContext(req, res));
      const result = await caller.apiKeys.verify(parseLeniently(req.body as Buffer));
      res.status(200).json(result);
    } catch (err) {
      const error = err instanceof TRPCError ? err : new TRPCError({ code: 'INTERNAL_SERVER_ERROR', cause: err });
      sendError(res, fromTRPCError(error), errorHeaders(error));
    }
  };
}
