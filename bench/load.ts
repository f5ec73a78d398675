/**
 * Load generators. HTTP goes through autocannon's programmatic API (in this process, so a
 * separate process from the server); every response's latency is recorded here at full
 * resolution (autocannon's own histogram rounds to whole milliseconds). Direct-`pg`
 * baselines use a loop of `concurrency` workers over a shared pool.
 */
import { performance } from 'node:perf_hooks';
import autocannon, { type Request } from 'autocannon';

export interface Stats {
  /** Successful (2xx, or resolved) operations per second. */
  rps: number;
  /** Latency percentiles in ms over successful operations. */
  p50: number;
  p99: number;
  ok: number;
  /** Non-2xx answers (HTTP) or rejected operations (loops), by status or message. */
  failures: Record<string, number>;
  errors: number;
  durationS: number;
}

export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank]!;
}

function summarize(latencies: number[], ok: number, durationS: number, failures: Record<string, number>, errors: number): Stats {
  const sorted = Float64Array.from(latencies).sort();
  return { rps: ok / durationS, p50: percentile(sorted, 50), p99: percentile(sorted, 99), ok, failures, errors, durationS };
}

export const failureCount = (s: Stats) => Object.values(s.failures).reduce((a, b) => a + b, 0) + s.errors;

export interface HttpLoad {
  url: string;
  method?: string;
  path: string;
  body?: string | Buffer;
  headers?: Record<string, string>;
  connections: number;
  durationS: number;
  /** Per-request setup (e.g. a fresh body each time). */
  setupRequest?: Request['setupRequest'];
  /** Requests per second over all connections (unset: as fast as possible). */
  overallRate?: number;
  /** Per-request timeout, seconds (autocannon's default is 10). */
  timeoutS?: number;
}

export async function httpLoad(o: HttpLoad): Promise<Stats> {
  const latencies: number[] = [];
  const failures: Record<string, number> = {};
  let ok = 0;
  const request: Request = {
    method: o.method ?? 'GET',
    path: o.path,
    headers: { ...(o.body !== undefined ? { 'content-type': 'application/json' } : {}), ...o.headers },
    ...(o.body !== undefined ? { body: o.body } : {}),
    ...(o.setupRequest ? { setupRequest: o.setupRequest } : {}),
  };
  const started = performance.now();
  const instance = autocannon({
    url: o.url,
    connections: o.connections,
    duration: o.durationS,
    timeout: o.timeoutS ?? 10,
    ...(o.overallRate ? { overallRate: o.overallRate } : {}),
    requests: [request],
  });
  instance.on('response', (_client, status, _bytes, responseTime) => {
    if (status >= 200 && status < 300) {
      ok++;
      latencies.push(responseTime);
    } else {
      failures[status] = (failures[status] ?? 0) + 1;
    }
  });
  const result = await instance;
  const durationS = result.duration > 0 ? result.duration : (performance.now() - started) / 1000;
  return summarize(latencies, ok, durationS, failures, result.errors);
}

/** `concurrency` workers calling `op(n)` (n counts up across workers) for `durationS`. */
export async function loopLoad(concurrency: number, durationS: number, op: (n: number) => Promise<unknown>): Promise<Stats> {
  const latencies: number[] = [];
  const failures: Record<string, number> = {};
  let ok = 0;
  let n = 0;
  const started = performance.now();
  const end = started + durationS * 1000;
  const worker = async () => {
    while (performance.now() < end) {
      const t0 = performance.now();
      try {
        await op(n++);
        latencies.push(performance.now() - t0);
        ok++;
      } catch (err) {
        const key = (err as Error).message.slice(0, 80);
        failures[key] = (failures[key] ?? 0) + 1;
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return summarize(latencies, ok, (performance.now() - started) / 1000, failures, 0);
}
