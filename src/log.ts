/**
 * The service's logger: pino behind a small interface (`log.info(msg, fields)`), JSON lines on
 * stderr filtered by LOG_LEVEL, or pino-pretty's readable lines with LOG_FORMAT=pretty.
 *
 * Secrets never reach a line: whatever a caller passes, fields named `authorization`, `key`,
 * `plaintext`, `password`, `token`, `secret`, `cookie(s)` or `set-cookie` (at the top level,
 * one level down, or under `headers`) are written as "[redacted]". Callers log no request
 * data beyond the request line of src/observability/http.ts, which has no header or body in it.
 */
import { createRequire } from 'node:module';
import pino, { type DestinationStream } from 'pino';

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export type LogFormat = 'json' | 'pretty';

/**
 * The request line's fields (src/observability/http.ts): fixed names, none of them a secret's,
 * and no header or body in them.
 */
export interface RequestLine {
  req_id: string;
  method: string;
  route: string;
  /** Unmatched requests only. */
  path?: string;
  status: number;
  duration_ms: number;
  tenant_id: string | undefined;
  actor: string | undefined;
  actor_type: string | undefined;
  aborted?: true;
  trace_id?: string;
}

export interface Logger {
  /**
   * One request line at info. Its field names are fixed (RequestLine) and none is a secret's,
   * so it skips the redaction every other line goes through: with the redaction, it was about
   * a quarter of a cached verify's CPU.
   */
  request(line: RequestLine): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  /** Whether a line of this level would be written (to skip building one that would not). */
  enabled(level: 'info' | 'warn' | 'error'): boolean;
}

/** Where lines go: a function or a stream taking one line (with its newline) at a time. */
export type LogDestination = ((line: string) => void) | { write(line: string): unknown };

const SECRET_FIELDS = ['authorization', 'key', 'plaintext', 'password', 'token', 'secret', 'cookie', 'cookies', '"set-cookie"'];

/** fast-redact paths: each secret field at the top level, one level down, and in a nested `headers`. */
export const REDACTED_PATHS = SECRET_FIELDS.flatMap((f) => {
  const member = f.startsWith('"') ? `[${f}]` : `.${f}`;
  return [f.startsWith('"') ? `[${f}]` : f, `*${member}`, `*.headers${member}`];
});

function prettyStream(): DestinationStream {
  // Loaded only when asked for: JSON output never pays for it.
  const pretty = createRequire(import.meta.url)('pino-pretty') as (opts: object) => DestinationStream;
  return pretty({ destination: 2, sync: true, colorize: process.stderr.isTTY === true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname' });
}

function streamOf(destination: LogDestination | undefined, format: LogFormat): DestinationStream {
  if (typeof destination === 'function') return { write: (line: string) => void destination(line) };
  if (destination) return destination as DestinationStream;
  return format === 'pretty' ? prettyStream() : pino.destination({ dest: 2, sync: true });
}

/**
 * A logger at `level` (`silent` writes nothing). `destination` defaults to stderr; tests pass
 * a function or stream to capture the lines. `format` is for stderr only (a given destination
 * always receives JSON lines).
 */
export function createLogger(level: LogLevel = 'info', destination?: LogDestination, format: LogFormat = 'json'): Logger {
  const options = {
    level,
    base: undefined,
    messageKey: 'msg',
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label: string) => ({ level: label }) },
  };
  const stream = streamOf(destination, destination ? 'json' : format);
  const logger = pino({ ...options, redact: { paths: REDACTED_PATHS, censor: '[redacted]' } }, stream);
  const requests = pino(options, stream);
  return {
    request: (line) => requests.info(line, 'request'),
    info: (msg, fields) => (fields ? logger.info(fields, msg) : logger.info(msg)),
    warn: (msg, fields) => (fields ? logger.warn(fields, msg) : logger.warn(msg)),
    error: (msg, fields) => (fields ? logger.error(fields, msg) : logger.error(msg)),
    enabled: (lvl) => logger.isLevelEnabled(lvl),
  };
}

/** What an unexpected error may say in a log line: its kind and message, never request data. */
export const describeError = (err: unknown) =>
  err instanceof Error ? { error: err.name, message: err.message, stack: err.stack } : { error: String(err) };
