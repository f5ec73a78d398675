/**
 * Prometheus metrics (prom-client), served as text at `GET /metrics`: on the main listener,
 * on a listener of its own (METRICS_ADDR), or not at all (METRICS=off).
 *
 * Each app has its own registry (tests run several apps in one process); the process metrics
 * (`process_*`, `nodejs_*`) are collected once per process and exposed by every registry.
 * Gauges that describe a component (argon2 pool, verify cache, database pool) are read from
 * it when scraped, so nothing is counted twice and the hot path does no extra work for them.
 *
 * The request histogram is the one series written on every request, the verify lane's
 * included, so it is a small histogram of its own (a few map lookups and additions per
 * request, no allocation once a series exists) written in the same text format after
 * prom-client's; prom-client's Histogram allocates and hashes its labels on every observation.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type pg from 'pg';
import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';
import type { Deps } from '../domain/deps.js';
import type { VerifyFailure } from '../domain/verify.js';
import { Argon2Pool } from '../keys/argon2-pool.js';

/** Seconds; fine at the low end, where the verify lane's cache hits are. */
const DURATION_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

export type VerifyOutcome = 'VALID' | VerifyFailure;
const VERIFY_OUTCOMES: VerifyOutcome[] = ['VALID', 'MALFORMED', 'NOT_FOUND', 'REVOKED', 'EXPIRED', 'TENANT_FROZEN', 'NOT_ENTITLED'];

let processRegistry: Registry | undefined;

/** `process_*` and `nodejs_*`, collected once per process however many apps it runs. */
function processMetrics(): Registry {
  if (!processRegistry) {
    processRegistry = new Registry();
    collectDefaultMetrics({ register: processRegistry });
  }
  return processRegistry;
}

interface Series {
  /** `method="…",route="…",status="…"` */
  labels: string;
  /** Observations per bucket (not cumulative; the last one is +Inf only). */
  counts: Float64Array;
  sum: number;
  count: number;
}

/** Label values as the text format wants them. */
const labelValue = (v: string) => v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');

/** `http_request_duration_seconds{method, route, status}`, in the Prometheus text format. */
class RequestHistogram {
  private readonly name = 'http_request_duration_seconds';
  /** route → method → status → series: no label hashing or allocation once a series exists. */
  private readonly series = new Map<string, Map<string, Map<number, Series>>>();

  observe(method: string, route: string, status: number, seconds: number): void {
    let byMethod = this.series.get(route);
    if (!byMethod) this.series.set(route, (byMethod = new Map()));
    let byStatus = byMethod.get(method);
    if (!byStatus) byMethod.set(method, (byStatus = new Map()));
    let series = byStatus.get(status);
    if (!series) {
      const labels = `method="${labelValue(method)}",route="${labelValue(route)}",status="${status}"`;
      byStatus.set(status, (series = { labels, counts: new Float64Array(DURATION_BUCKETS.length + 1), sum: 0, count: 0 }));
    }
    let i = 0;
    while (i < DURATION_BUCKETS.length && seconds > DURATION_BUCKETS[i]!) i++;
    series.counts[i]!++;
    series.sum += seconds;
    series.count++;
  }

  render(): string {
    const { name } = this;
    const lines = [`# HELP ${name} HTTP requests by method, route template and status, and how long they took`, `# TYPE ${name} histogram`];
    for (const byMethod of this.series.values()) {
      for (const byStatus of byMethod.values()) {
        for (const s of byStatus.values()) {
          let cumulative = 0;
          DURATION_BUCKETS.forEach((le, i) => {
            cumulative += s.counts[i]!;
            lines.push(`${name}_bucket{le="${le}",${s.labels}} ${cumulative}`);
          });
          lines.push(`${name}_bucket{le="+Inf",${s.labels}} ${s.count}`, `${name}_sum{${s.labels}} ${s.sum}`, `${name}_count{${s.labels}} ${s.count}`);
        }
      }
    }
    return `${lines.join('\n')}\n`;
  }
}

export class Metrics {
  private readonly registry = new Registry();
  private readonly exposed: Registry;
  private readonly requests = new RequestHistogram();
  /** Verify answers by code, counted here and handed to prom-client when scraped (nothing but `++` per verify). */
  private readonly outcomes: Record<VerifyOutcome, number> = {
    VALID: 0, MALFORMED: 0, NOT_FOUND: 0, REVOKED: 0, EXPIRED: 0, TENANT_FROZEN: 0, NOT_ENTITLED: 0,
  };

  constructor(deps: Deps) {
    const registers = [this.registry];
    const outcomes = this.outcomes;
    new Counter({
      name: 'tenant_registry_verify_outcomes_total',
      help: 'API key verify answers by code (VALID or the reason it is not)',
      labelNames: ['code'],
      registers,
      collect() {
        this.reset();
        for (const code of VERIFY_OUTCOMES) this.labels(code).inc(outcomes[code]);
      },
    });

    const cache = deps.verifyCache;
    new Counter({
      name: 'tenant_registry_verify_cache_lookups_total',
      help: 'Verify cache lookups by result (hit: answered without argon2 or the database)',
      labelNames: ['result'],
      registers,
      collect() {
        this.reset();
        this.labels('hit').inc(cache.stats.hits);
        this.labels('miss').inc(cache.stats.misses);
      },
    });
    new Gauge({
      name: 'tenant_registry_verify_cache_entries',
      help: 'Entries in the verify cache',
      registers,
      collect() {
        this.set(cache.size);
      },
    });

    const hasher = deps.hasher;
    if (hasher instanceof Argon2Pool) {
      const stat = (name: string, help: string, read: (s: ReturnType<Argon2Pool['stats']>) => number) =>
        new Gauge({ name, help, registers, collect() { this.set(read(hasher.stats())); } });
      stat('tenant_registry_argon2_queue_length', 'argon2 jobs waiting for a worker', (s) => s.queued);
      stat('tenant_registry_argon2_busy_workers', 'argon2 workers hashing right now', (s) => s.busy);
      stat('tenant_registry_argon2_workers', 'argon2 worker threads', (s) => s.threads);
      stat('tenant_registry_argon2_running_workers', 'argon2 worker threads running (an idle one exits and frees its memory)', (s) => s.live);
    }

    const pool = (deps.store as { pool?: pg.Pool }).pool;
    if (deps.store.kind === 'postgres' && pool) {
      const stat = (name: string, help: string, read: (p: pg.Pool) => number) =>
        new Gauge({ name, help, registers, collect() { this.set(read(pool)); } });
      stat('tenant_registry_db_pool_in_use', 'Database connections checked out of the pool', (p) => p.totalCount - p.idleCount);
      stat('tenant_registry_db_pool_idle', 'Open database connections idle in the pool', (p) => p.idleCount);
      stat('tenant_registry_db_pool_waiting', 'Queries and transactions waiting for a database connection', (p) => p.waitingCount);
      stat('tenant_registry_db_pool_connections', 'Open database connections (in use and idle)', (p) => p.totalCount);
    }

    this.exposed = Registry.merge([processMetrics(), this.registry]);
  }

  /** One finished request; `route` is a template, never a path with ids in it. */
  observeRequest(method: string, route: string, status: number, seconds: number): void {
    this.requests.observe(method, route, status, seconds);
  }

  verified(code: VerifyOutcome): void {
    this.outcomes[code]++;
  }

  get contentType(): string {
    return this.exposed.contentType;
  }

  async render(): Promise<string> {
    return (await this.exposed.metrics()) + this.requests.render();
  }

  /** Answers a scrape. */
  async serve(res: ServerResponse): Promise<void> {
    const body = await this.render();
    res.writeHead(200, { 'Content-Type': this.contentType, 'Cache-Control': 'no-store' });
    res.end(body);
  }
}

/** The listener of METRICS_ADDR: `GET /metrics` and nothing else. */
export function createMetricsServer(metrics: Metrics, onError: (err: unknown) => void): Server {
  return createServer((req: IncomingMessage, res: ServerResponse) => {
    const path = req.url?.split('?', 1)[0];
    if (path === '/metrics' && (req.method === 'GET' || req.method === 'HEAD')) {
      metrics.serve(res).catch((err) => {
        onError(err);
        if (!res.headersSent) res.writeHead(500, { 'Content-Type': 'application/json; charset=utf-8' });
        res.end(JSON.stringify({ code: 'INTERNAL_SERVER_ERROR', message: 'Internal server error' }));
      });
      return;
    }
    res.writeHead(404, { 'Content-Type': 'application/json; charset=utf-8' });
    res.end(JSON.stringify({ code: 'NOT_FOUND', message: 'only GET /metrics is served here' }));
  });
}
