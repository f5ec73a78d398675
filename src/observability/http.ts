/**
 * What every request leaves behind, whichever lane serves it: one log line (method, route
 * template, status, duration, request id, tenant id, actor), one observation of the request
 * histogram, and (when tracing is on) the HTTP server span. `X-Request-Id` is taken from the
 * request when it is sane (1–128 visible ASCII characters), else made up, and echoed.
 *
 * The verify lane is the hot path, so the cost here is one small record per request, one
 * shared 'close' listener and a few map lookups; no log line is built when it would not be
 * written. The record rides on the request; the tRPC context picks it up (src/context.ts) and
 * fills in the caller, the tenant the operation concerns and verify's answer.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import type { Span } from '@opentelemetry/api';
import type { AuthOutcome } from '../auth/authenticate.js';
import type { Actor } from '../db/store.js';
import type { Logger } from '../log.js';
import type { Metrics, VerifyOutcome } from './metrics.js';
import { templateOf, UNMATCHED } from './routes.js';
import { tracing } from './tracing.js';

const RECORD = Symbol('tenant-registry.request');
const REQUEST_ID = /^[\x21-\x7e]{1,128}$/;
/** Longest path written in a request line (only unmatched requests have theirs written). */
const MAX_LOGGED_PATH = 200;

interface Observer {
  readonly log: Logger;
  readonly metrics: Metrics | null;
}

/** One request, while it runs. */
export class RequestRecord {
  /** The route template: known up front on the verify lane, else found when the response is done. */
  route: string | undefined;
  /** The tenant the operation concerns (from its input), or a verified key's tenant. */
  tenantId: string | undefined = undefined;
  /** The authenticated caller. */
  actor: Actor | undefined = undefined;
  /** The server span, when tracing is on. */
  span: Span | undefined = undefined;

  constructor(
    private readonly observer: Observer,
    readonly id: string,
    readonly method: string,
    /** The request target as it arrived (express rewrites req.url while routing). */
    readonly url: string,
    route: string | undefined,
    readonly start: number,
  ) {
    this.route = route;
  }

  /** The path, without the query string. */
  get path(): string {
    const q = this.url.indexOf('?');
    return q < 0 ? this.url : this.url.slice(0, q);
  }

  /** Verify answered: counted by code; a valid key names its tenant. */
  verified(code: VerifyOutcome, tenantId?: string): void {
    this.observer.metrics?.verified(code);
    if (tenantId) this.tenantId = tenantId;
  }
}

type Tagged = IncomingMessage & { [RECORD]?: RequestRecord };

/** The record of a request that came in through the observed listener. */
export const recordOf = (req: IncomingMessage): RequestRecord | undefined => (req as Tagged)[RECORD];

const requestIdOf = (req: IncomingMessage): string => {
  const given = req.headers['x-request-id'];
  return typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID();
};

/** express's matched route (`/healthz`, `/docs/assets/:file`), if a route handler claimed the request. */
const expressRoute = (req: IncomingMessage): string | undefined => {
  const r = req as { route?: { path?: unknown }; baseUrl?: string };
  return typeof r.route?.path === 'string' ? `${r.baseUrl ?? ''}${r.route.path}` : undefined;
};

/** The caller an express gate authenticated, for requests that ended before a tRPC context existed. */
const gateActor = (res: ServerResponse): Actor | undefined => {
  const auth = (res as { locals?: { auth?: AuthOutcome } }).locals?.auth;
  return auth?.ok ? auth.principal.actor : undefined;
};

export type Dispatch = (req: IncomingMessage, res: ServerResponse) => void;

/**
 * `observe(req, res, route, dispatch)` records the request and hands it to `dispatch`
 * (inside its server span when tracing is on). `route` is given by a lane of its own (the
 * verify lane), which knows its template and writes its whole head in one `writeHead`,
 * `X-Request-Id` included (`recordOf(req).id`): a header set here first would send Node's
 * `writeHead` down its slow path, about 8 % of a cached verify's CPU. Otherwise (express)
 * the header is set here.
 */
export function requestObserver(observer: Observer) {
  const { log, metrics } = observer;

  function finish(record: RequestRecord, res: ServerResponse): void {
    const req = res.req;
    // Closed before an answer was sent: the client went away (nginx's 499).
    const status = res.headersSent ? res.statusCode : 499;
    const route = record.route ?? expressRoute(req) ?? templateOf(record.path);
    const ms = performance.now() - record.start;
    metrics?.observeRequest(record.method, route, status, ms / 1000);
    tracing?.finish(record, route, status);
    if (!log.enabled('info')) return;
    const actor = record.actor ?? gateActor(res);
    log.request({
      req_id: record.id,
      method: record.method,
      route,
      ...(route === UNMATCHED ? { path: record.path.slice(0, MAX_LOGGED_PATH) } : undefined),
      status,
      duration_ms: Math.round(ms * 1000) / 1000,
      tenant_id: record.tenantId,
      actor: actor?.id,
      actor_type: actor?.type,
      ...(res.writableFinished ? undefined : { aborted: true }),
      ...(record.span ? { trace_id: record.span.spanContext().traceId } : undefined),
    });
  }

  function onClose(this: ServerResponse): void {
    const record = recordOf(this.req);
    if (record) finish(record, this);
  }

  return function observe(req: IncomingMessage, res: ServerResponse, route: string | undefined, dispatch: Dispatch): void {
    const record = new RequestRecord(observer, requestIdOf(req), req.method ?? 'GET', req.url ?? '/', route, performance.now());
    (req as Tagged)[RECORD] = record;
    if (route === undefined) res.setHeader('X-Request-Id', record.id);
    res.on('close', onClose);
    const active = tracing;
    if (active) active.serve(req, res, record, dispatch);
    else dispatch(req, res);
  };
}
