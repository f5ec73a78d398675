/**
 * The REST face of the app router: `/v1/...` through trpc-to-openapi's express middleware,
 * behind the body and query checks of request-body.ts, with the verify lane in front.
 */
import express, { type Request } from 'express';
import { createOpenApiExpressMiddleware } from 'trpc-to-openapi';
import { VERIFY_PATH } from '../routers/api-keys.js';
import { appRouter } from '../routers/index.js';
import type { Context, Meta } from '../trpc.js';
import { jsonBody, nonEmptyQuery, rawBody } from './request-body.js';
import { verifyLane } from './verify-lane.js';

/** Success statuses other than 200, by procedure path (from each procedure's meta). */
const successStatus = new Map<string, number>(
  Object.entries(appRouter._def.procedures).flatMap(([path, proc]) => {
    const status = (proc as unknown as { _def: { meta?: Meta } })._def.meta?.successStatus;
    return status ? [[path, status] as const] : [];
  }),
);

export function restApi(createContext: (req: Request, transport: Context['transport']) => Context, onError: (err: unknown) => void) {
  const api = express.Router();
  api.post(VERIFY_PATH, rawBody, verifyLane((req) => createContext(req, 'rest')));
  api.use(rawBody, nonEmptyQuery, jsonBody);
  api.use(
    createOpenApiExpressMiddleware({
      router: appRouter,
      createContext: ({ req }) => createContext(req as Request, 'rest'),
      responseMeta: ({ paths, errors }) => {
        const status = errors.length === 0 && paths?.[0] ? successStatus.get(paths[0]) : undefined;
        return status ? { status } : {};
      },
      onError: ({ error }) => {
        if (error.code === 'INTERNAL_SERVER_ERROR') onError(error.cause ?? error);
      },
    }),
  );
  return api;
}
