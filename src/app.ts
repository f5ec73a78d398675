/**
 * The HTTP application: health endpoints, /metrics, tRPC at /trpc, REST at /v1
 * (trpc-to-openapi), and in front of it all the verify lane (src/rest/verify-lane.ts). Both
 * lanes are observed (request line, request metrics, server span) by src/observability/http.ts.
 */
import type { RequestListener } from 'node:http';
import { createExpressMiddleware } from '@trpc/server/adapters/express';
import express, { type ErrorRequestHandler } from 'express';
import { contextFactory, type ContextOptions } from './context.js';
import type { Deps } from './domain/deps.js';
import { describeError, type Logger } from './log.js';
import { requestObserver, type Dispatch } from './observability/http.js';
import { Metrics } from './observability/metrics.js';
import { sendError } from './rest/error-body.js';
import { authOf, requireTrpcAuthentication } from './rest/authentication.js';
import { docsRouter } from './rest/docs.js';
import { restApi } from './rest/rest-api.js';
import { isVerifyRequest, verifyLane } from './rest/verify-lane.js';
import { MAX_BODY_BYTES, bodyError } from './rest/request-body.js';
import { appRouter } from './routers/index.js';
import { VERIFY_PATH } from './routers/api-keys.js';

export interface AppOptions extends ContextOptions {
  deps: Deps;
  log: Logger;
  /** Prometheus metrics: a registry of the app's own when not given; `null` turns them off (METRICS=off). */
  metrics?: Metrics | null;
  /** Whether this listener answers `GET /metrics` (default true; false when METRICS_ADDR serves it elsewhere). */
  serveMetrics?: boolean;
}

/** Under API.md's 2 s, so that /readyz itself answers 503 within 2 s of the database going away. */
const READY_TIMEOUT_MS = 1500;

const withTimeout = <T>(work: Promise<T>, ms: number) =>
  new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('timed out')), ms);
    work.then(resolve, reject).finally(() => clearTimeout(timer));
  });

/** The server's request listener: verify takes its own lane, everything else goes to express. */
export function createRequestHandler(opts: AppOptions): RequestListener {
  const metrics = opts.metrics === undefined ? new Metrics(opts.deps) : opts.metrics;
  const app = createApp({ ...opts, metrics });
  const onError = (err: unknown) => opts.log.error('unexpected error', describeError(err));
  const lane = verifyLane(contextFactory(opts.deps, opts), opts, onError);
  const verify: Dispatch = (req, res) => void lane(req, res);
  const observe = requestObserver({ log: opts.log, metrics });
  return (req, res) => {
    if (isVerifyRequest(req)) observe(req, res, VERIFY_PATH, verify);
    else observe(req, res, undefined, app);
  };
}

export function createApp(opts: AppOptions): express.Express {
  const createContext = contextFactory(opts.deps, opts);
  const onError = (err: unknown) => opts.log.error('unexpected error', describeError(err));
  const app = express();
  app.disable('x-powered-by');
  app.set('query parser', 'simple');

  app.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });
  app.get('/readyz', async (_req, res) => {
    try {
      await withTimeout(opts.deps.store.ping(), READY_TIMEOUT_MS);
      res.json({ status: 'ready' });
    } catch {
      res.status(503).json({ status: 'unavailable' });
    }
  });
  const metrics = opts.metrics;
  if (metrics && opts.serveMetrics !== false) {
    // No token, like the health endpoints: scrapers do not carry one.
    app.get('/metrics', (_req, res, next) => {
      metrics.serve(res).catch(next);
    });
  }

  app.use(
    '/trpc',
    requireTrpcAuthentication(opts),
    createExpressMiddleware({
      router: appRouter,
      createContext: ({ req, res }) => createContext(req, 'trpc', authOf(res)),
      maxBodySize: MAX_BODY_BYTES,
      onError: ({ error }) => {
        if (error.code === 'INTERNAL_SERVER_ERROR') onError(error.cause ?? error);
      },
    }),
  );

  app.use(docsRouter());
  app.use(restApi(createContext, opts, onError));

  const lastResort: ErrorRequestHandler = (err, _req, res, _next) => {
    if (res.headersSent) return res.end();
    if ((err as { type?: string })?.type?.startsWith('entity.')) return bodyError(err, res);
    onError(err);
    sendError(res, { code: 'INTERNAL_SERVER_ERROR', message: 'Internal server error' });
  };
  app.use(lastResort);
  return app;
}
