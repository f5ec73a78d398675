/**
 * Tracing switch. Off (the default) it is `null` and nothing else happens: the OpenTelemetry
 * SDK is not even loaded, and the request path does one null check. `startTracing()` (called
 * by src/server.ts when OTEL_EXPORTER_OTLP_ENDPOINT is set) loads tracing-sdk.ts, which
 * starts the SDK and provides the three kinds of spans: the HTTP server span of each request
 * (src/observability/http.ts, around both lanes), one span per tRPC procedure (src/trpc.ts),
 * and the SQL spans of pg (@opentelemetry/instrumentation-pg).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from '../log.js';
import type { RequestRecord } from './http.js';

export interface Tracing {
  /** Starts the server span of a request and runs `dispatch` in its context. */
  serve(req: IncomingMessage, res: ServerResponse, record: RequestRecord, dispatch: (req: IncomingMessage, res: ServerResponse) => void): void;
  /** Ends the request's server span (no-op without one). */
  finish(record: RequestRecord, route: string, status: number): void;
  /** Runs a tRPC procedure (the rest of its middleware chain) in a span of its own. */
  procedure<T extends { ok: boolean }>(path: string, type: string, transport: string, next: () => Promise<T>): Promise<T>;
  /** Exports what is still buffered and stops. */
  shutdown(): Promise<void>;
}

/** The active tracing, or null when traces are off. */
export let tracing: Tracing | null = null;

export interface TracingOptions {
  serviceName: string;
  log: Logger;
}

export async function startTracing(opts: TracingOptions): Promise<Tracing> {
  const { createTracing } = await import('./tracing-sdk.js');
  tracing = createTracing(opts);
  return tracing;
}
