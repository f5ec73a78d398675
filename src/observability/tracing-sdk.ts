/**
 * The OpenTelemetry side of tracing, loaded only when traces are on (see tracing.ts).
 *
 * The SDK (NodeSDK) takes its exporter from the standard environment: OTLP to
 * OTEL_EXPORTER_OTLP_ENDPOINT (`/v1/traces`), `http/protobuf` unless OTEL_EXPORTER_OTLP_PROTOCOL
 * says `http/json` (or `grpc`), batched (OTEL_BSP_*), sampled per OTEL_TRACES_SAMPLER. Only
 * traces: no OTLP metrics (Prometheus has them) and no OTLP logs (pino has them).
 *
 * Why spans are made by hand for HTTP and tRPC: auto-instrumentation of express/http under
 * ESM needs a loader hook registered before the app's modules are imported (`node --import`),
 * which `tsx src/server.ts`, the compiled build and the in-process tests would each have to
 * arrange. A server span made where the request enters (createRequestHandler) covers both
 * lanes (the verify lane never reaches express) and is named by the route template, and a
 * tRPC middleware gives each procedure its span. SQL spans come from
 * @opentelemetry/instrumentation-pg, which patches the prototypes of pg's Client and
 * pg-pool's Pool: those are shared by every import of pg, so requiring the modules once more
 * after the SDK has started lets its hook patch the copies already loaded.
 */
import { createRequire } from 'node:module';
import type { IncomingMessage, ServerResponse } from 'node:http';
import {
  context,
  diag,
  DiagLogLevel,
  propagation,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  trace,
  type Span,
} from '@opentelemetry/api';
import { PgInstrumentation } from '@opentelemetry/instrumentation-pg';
import { NodeSDK } from '@opentelemetry/sdk-node';
import {
  ATTR_CLIENT_ADDRESS,
  ATTR_HTTP_REQUEST_METHOD,
  ATTR_HTTP_RESPONSE_STATUS_CODE,
  ATTR_HTTP_ROUTE,
  ATTR_URL_PATH,
  ATTR_URL_SCHEME,
  ATTR_USER_AGENT_ORIGINAL,
} from '@opentelemetry/semantic-conventions';
import type { RequestRecord } from './http.js';
import type { Tracing, TracingOptions } from './tracing.js';

/** tRPC error codes that are the server's fault (a span status of ERROR). */
const SERVER_ERRORS = new Set(['INTERNAL_SERVER_ERROR', 'NOT_IMPLEMENTED', 'BAD_GATEWAY', 'SERVICE_UNAVAILABLE', 'GATEWAY_TIMEOUT']);

export function createTracing({ serviceName, log }: TracingOptions): Tracing {
  // Export failures and SDK problems go to our log (warn), not nowhere.
  diag.setLogger(
    {
      error: (msg, ...args) => log.warn(`opentelemetry: ${msg}`, args.length ? { detail: args.map(String) } : undefined),
      warn: (msg, ...args) => log.warn(`opentelemetry: ${msg}`, args.length ? { detail: args.map(String) } : undefined),
      info: () => {},
      debug: () => {},
      verbose: () => {},
    },
    DiagLogLevel.WARN,
  );

  const sdk = new NodeSDK({
    serviceName,
    metricReaders: [],
    logRecordProcessors: [],
    // Only queries made while serving a request (no root spans for LISTEN or background flushes);
    // statements are recorded, their parameter values never are (enhancedDatabaseReporting off).
    instrumentations: [new PgInstrumentation({ requireParentSpan: true, enhancedDatabaseReporting: false })],
  });
  sdk.start();
  const require = createRequire(import.meta.url);
  require('pg');
  require('pg-pool');

  const tracer = trace.getTracer('tenant-registry');

  return {
    serve(req: IncomingMessage, res: ServerResponse, record: RequestRecord, dispatch) {
      const parent = propagation.extract(ROOT_CONTEXT, req.headers);
      const userAgent = req.headers['user-agent'];
      const span = tracer.startSpan(
        record.method,
        {
          kind: SpanKind.SERVER,
          attributes: {
            [ATTR_HTTP_REQUEST_METHOD]: record.method,
            [ATTR_URL_PATH]: record.path,
            [ATTR_URL_SCHEME]: 'http',
            ...(userAgent ? { [ATTR_USER_AGENT_ORIGINAL]: userAgent } : {}),
            ...(req.socket.remoteAddress ? { [ATTR_CLIENT_ADDRESS]: req.socket.remoteAddress } : {}),
            'request.id': record.id,
          },
        },
        parent,
      );
      record.span = span;
      const active = trace.setSpan(parent, span);
      // Callbacks of the request's and response's events (express reads the body in them) run in the span too.
      context.bind(active, req);
      context.bind(active, res);
      context.with(active, dispatch, undefined, req, res);
    },

    finish(record, route, status) {
      const span = record.span as Span | undefined;
      if (!span) return;
      span.updateName(`${record.method} ${route}`);
      span.setAttribute(ATTR_HTTP_ROUTE, route);
      span.setAttribute(ATTR_HTTP_RESPONSE_STATUS_CODE, status);
      if (record.tenantId) span.setAttribute('tenant.id', record.tenantId);
      if (record.actor) span.setAttribute('enduser.id', record.actor.id);
      if (status >= 500) span.setStatus({ code: SpanStatusCode.ERROR });
      span.end();
    },

    procedure(path, type, transport, next) {
      const attributes = { 'rpc.system': 'trpc', 'rpc.method': path, 'trpc.type': type, 'trpc.transport': transport };
      return tracer.startActiveSpan(`trpc ${path}`, { kind: SpanKind.INTERNAL, attributes }, async (span) => {
        const failed = (error: unknown) => {
          const code = (error as { code?: unknown } | undefined)?.code;
          if (typeof code === 'string') span.setAttribute('trpc.error_code', code);
          if (typeof code !== 'string' || SERVER_ERRORS.has(code)) span.setStatus({ code: SpanStatusCode.ERROR, ...(typeof code === 'string' ? { message: code } : {}) });
        };
        try {
          const result = await next();
          if (!result.ok) failed((result as { error?: unknown }).error);
          return result;
        } catch (err) {
          // A domain error mapped to its TRPCError (NOT_FOUND, CONFLICT, …) is thrown from here.
          failed(err);
          throw err;
        } finally {
          span.end();
        }
      });
    },

    shutdown: () => sdk.shutdown(),
  };
}
