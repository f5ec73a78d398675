/**
 * The REST face of the app router: `/v1/...` through trpc-to-openapi's express middleware,
 * behind the body and query checks of request-body.ts, with the verify lane in front.
 */
import express from 'express';
import { createOpenApiExpressMiddleware } from 'trpc-to-openapi';
import { appRouter } from '../routers/index.js';
import type { ContextOptions, CreateContext } from '../context.js';
import type { Meta } from '../trpc.js';
import { authOf, requireAuthentication } from './authentication.js';
import { errorHeaders } from './error-body.js';
import { jsonBody, nonEmptyQuery, rawBody } from './request-body.js';

/** Success statuses other than 200, by procedure path (from each procedure's meta). */
const successStatus = new Map<string, number>(
  Object.entries(appRouter._def.procedures).flatMap(([path, proc]) => {
    const status = (proc as unknown as { _def: { meta?: Meta } })._def.meta?.successStatus;
    return status ? [[path, status] as const] : [];
  }),
);

/**
 * HEAD is GET without the body (RFC 9110 §9.3.2; Node drops the body of a HEAD response).
 * Left to trpc-to-openapi, HEAD would answer 204 on every path, unknown ones included.
 */
const headAsGet: express.RequestHandler = (req, _res, next) => {
  if (req.method === 'HEAD') req.method = 'GET';
  next();
};

export function restApi(createContext: CreateContext, opts: ContextOptions, onError: (err: unknown) => void) {
  const api = express.Router();
  // Every /v1 path needs a caller; other paths fall through to the 404 below without one.
  api.use('/v1', requireAuthentication(opts));
  api.use(headAsGet, rawBody, nonEmptyQuery, jsonBody);
  api.use(
    createOpenApiExpressMiddleware({
      router: appRouter,
      createContext: ({ req, res }) => createContext(req, 'rest', authOf(res as express.Response)),
      responseMeta: ({ paths, errors }) => {
        if (errors[0]) return { headers: errorHeaders(errors[0]) };
        const status = paths?.[0] ? successStatus.get(paths[0]) : undefined;
        return status ? { status } : {};
      },
      onError: ({ error }) => {
        if (error.code === 'INTERNAL_SERVER_ERROR') onError(error.cause ?? error);
      },
    }),
  );
  return api;
}
