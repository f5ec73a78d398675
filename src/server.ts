/**
 * Entry point: `npm start`. Reads the environment, starts tracing when an OTLP endpoint is
 * configured, opens the store, serves HTTP (and /metrics on METRICS_ADDR when set), and on
 * SIGTERM/SIGINT drains in-flight requests, flushes key usage and buffered spans, and closes
 * the pool.
 */
import type { AddressInfo } from 'node:net';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createRequestHandler } from './app.js';
import type { Authenticator } from './auth/authenticate.js';
import { OidcVerifier } from './auth/oidc.js';
import { ConfigError, loadConfig, type Config } from './config.js';
import { PendingMigrationsError } from './db/open-store.js';
import { createRuntime } from './deps.js';
import { createLogger, describeError } from './log.js';
import { createMetricsServer, Metrics } from './observability/metrics.js';
import { startTracing, type Tracing } from './observability/tracing.js';
import { answerClientErrors } from './rest/client-errors.js';

const SHUTDOWN_GRACE_MS = 10_000;
const TRACE_FLUSH_MS = 3000;

function authenticatorFor(config: Config): Authenticator {
  if (!config.authEnabled) return { mode: 'off' };
  // loadConfig guarantees both when authentication is on.
  const issuer = config.KEYCLOAK_ISSUER!;
  const audience = config.API_AUDIENCE!;
  return { mode: 'on', audience, verifier: new OidcVerifier({ issuer, audience }) };
}

async function main() {
  let config;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`);
      process.exit(1);
    }
    throw err;
  }
  const log = createLogger(config.LOG_LEVEL, undefined, config.logFormat);
  // A stray rejection (a dropped connection, say) is logged; it must not take the process down.
  process.on('unhandledRejection', (reason) => log.error('unhandled rejection', describeError(reason)));
  // Before the database pool exists, so that its queries are traced (see src/observability/tracing-sdk.ts).
  let tracing: Tracing | null = null;
  if (config.tracing) {
    try {
      tracing = await startTracing({ serviceName: config.OTEL_SERVICE_NAME, log });
    } catch (err) {
      log.error('cannot start tracing; serving without it', describeError(err));
    }
  }
  let runtime;
  try {
    runtime = await createRuntime(config, log);
  } catch (err) {
    if (err instanceof PendingMigrationsError) {
      process.stderr.write(`refusing to start: ${err.message}\n`);
    } else {
      process.stderr.write(`refusing to start: cannot open the database: ${(err as Error).message}\n`);
    }
    process.exit(1);
  }
  // The same listener the tests use: the verify lane in front of express.
  const metrics = config.METRICS === 'on' ? new Metrics(runtime) : null;
  const handler = createRequestHandler({
    deps: runtime,
    log,
    trustProxy: config.TRUST_PROXY,
    auth: authenticatorFor(config),
    metrics,
    serveMetrics: config.METRICS_ADDR === undefined,
  });
  if (!config.authEnabled) {
    // Loud on purpose: written whatever LOG_LEVEL says.
    const msg = 'AUTHENTICATION IS OFF: every request acts as the platform-admin "dev". Set KEYCLOAK_ISSUER and API_AUDIENCE to turn it on.';
    process.stderr.write(`${JSON.stringify({ level: 'warn', time: new Date().toISOString(), msg })}\n`);
  }
  const server = createServer(handler);
  answerClientErrors(server);
  server.listen(config.ADDR.port, config.ADDR.host ?? '::');
  server.on('listening', () => {
    const { port } = server.address() as AddressInfo;
    log.info('tenant-registry listening', { port, store: runtime.store.kind, app_env: config.APP_ENV });
  });
  server.on('error', (err) => {
    process.stderr.write(`cannot listen on ${process.env.ADDR ?? ':8090'}: ${err.message}\n`);
    process.exit(1);
  });
  const metricsAddr = config.METRICS_ADDR;
  const metricsServer = metrics && metricsAddr ? createMetricsServer(metrics, (err) => log.error('unexpected error', describeError(err))) : null;
  if (metricsServer && metricsAddr) {
    metricsServer.listen(metricsAddr.port, metricsAddr.host ?? '::');
    metricsServer.on('listening', () => {
      const { port } = metricsServer.address() as AddressInfo;
      log.info('metrics listening', { port });
    });
    metricsServer.on('error', (err) => {
      process.stderr.write(`cannot listen on METRICS_ADDR ${process.env.METRICS_ADDR}: ${err.message}\n`);
      process.exit(1);
    });
  }

  // Responses still in progress at shutdown close their connection when they finish;
  // otherwise a keep-alive client holds server.close() for keepAliveTimeout after its answer.
  let stopping = false;
  const inFlight = new Set<ServerResponse>();
  // One shared listener, not a closure per request (verify's hot path goes through here).
  function settled(this: ServerResponse) {
    inFlight.delete(this);
  }
  server.prependListener('request', (_req: IncomingMessage, res: ServerResponse) => {
    if (stopping) res.setHeader('Connection', 'close');
    inFlight.add(res);
    res.on('close', settled);
  });
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info('shutting down', { signal });
    for (const res of inFlight) if (!res.headersSent) res.setHeader('Connection', 'close');
    setTimeout(() => {
      log.error('shutdown took too long; exiting');
      process.exit(1);
    }, SHUTDOWN_GRACE_MS).unref();
    metricsServer?.close();
    metricsServer?.closeAllConnections();
    server.close(async () => {
      await runtime.close().catch((err) => log.error('shutdown error', describeError(err)));
      // Buffered spans are sent, but an unreachable collector must not hold the exit past the grace period.
      if (tracing) {
        const flushed = tracing.shutdown().catch((err) => log.warn('could not flush spans', describeError(err)));
        await Promise.race([flushed, new Promise((resolve) => setTimeout(resolve, TRACE_FLUSH_MS).unref())]);
      }
      process.exit(0);
    });
    server.closeIdleConnections();
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

void main();
