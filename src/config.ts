/**
 * Configuration from the environment, validated at start-up. A bad value stops the
 * process with one line that names the variable.
 */
import { z } from 'zod';

const hostPort = z
  .string()
  .regex(/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]*):(\d{1,5})$/, 'must be [host]:port, e.g. :8090 or 127.0.0.1:8090')
  .transform((addr) => {
    const at = addr.lastIndexOf(':');
    const host = addr.slice(0, at).replace(/^\[|\]$/g, '');
    return { host: host || undefined, port: Number(addr.slice(at + 1)) };
  })
  .refine((a) => a.port <= 65535, 'port must be 0–65535');

const postgresUrl = z
  .string()
  .refine((s) => /^postgres(ql)?:\/\//.test(s) && URL.canParse(s), 'must be a postgres:// URL');

const httpUrl = z.string().refine((s) => /^https?:\/\//.test(s) && URL.canParse(s), 'must be an http:// or https:// URL');

const flag = z.enum(['true', 'false', '1', '0']).transform((v) => v === 'true' || v === '1');
const positiveInt = z.string().regex(/^[1-9][0-9]*$/, 'must be a positive integer').transform(Number);
const emptyAsUnset = (v: unknown) => (v === '' ? undefined : v);

/** On in stage/prod; in dev, on when AUTH=on or when an issuer is configured and AUTH is not off. */
const authEnabled = (env: { APP_ENV: string; AUTH?: 'on' | 'off'; KEYCLOAK_ISSUER?: string }) =>
  env.AUTH === 'on' || env.APP_ENV !== 'dev' || (env.AUTH === undefined && env.KEYCLOAK_ISSUER !== undefined);

const EnvVars = z.object({
  APP_ENV: z.preprocess(emptyAsUnset, z.enum(['dev', 'stage', 'prod']).default('dev')),
  ADDR: z.preprocess((v) => emptyAsUnset(v) ?? ':8090', hostPort),
  DATABASE_URL: z.preprocess(emptyAsUnset, postgresUrl.optional()),
  KEYCLOAK_ISSUER: z.preprocess(emptyAsUnset, z.url().optional()),
  API_AUDIENCE: z.preprocess(emptyAsUnset, z.string().min(1).optional()),
  AUTH: z.preprocess(emptyAsUnset, z.enum(['on', 'off']).optional()),
  LOG_LEVEL: z.preprocess(emptyAsUnset, z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info')),
  TRUST_PROXY: z.preprocess(emptyAsUnset, flag.default(false)),
  DATABASE_POOL_MAX: z.preprocess(emptyAsUnset, positiveInt.default(10)),
  ARGON2_THREADS: z.preprocess(emptyAsUnset, positiveInt.optional()),
  ARGON2_MAX_QUEUE: z.preprocess(emptyAsUnset, positiveInt.optional()),
  LOG_FORMAT: z.preprocess(emptyAsUnset, z.enum(['json', 'pretty']).optional()),
  METRICS: z.preprocess(emptyAsUnset, z.enum(['on', 'off']).default('on')),
  METRICS_ADDR: z.preprocess(emptyAsUnset, hostPort.optional()),
  OTEL_EXPORTER_OTLP_ENDPOINT: z.preprocess(emptyAsUnset, httpUrl.optional()),
  OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: z.preprocess(emptyAsUnset, httpUrl.optional()),
  OTEL_SERVICE_NAME: z.preprocess(emptyAsUnset, z.string().min(1).default('tenant-registry')),
});

/** Every variable the server reads (test and bench harnesses keep their own out of children). */
export const SERVER_ENV_VARS = Object.keys(EnvVars.shape);

const EnvSchema = EnvVars
  .superRefine((env, ctx) => {
    const problem = (path: string, message: string) => ctx.addIssue({ code: 'custom', path: [path], message });
    if (env.APP_ENV !== 'dev' && env.AUTH === 'off') problem('AUTH', `authentication cannot be off when APP_ENV=${env.APP_ENV}`);
    const authOn = authEnabled(env);
    if (authOn && !env.KEYCLOAK_ISSUER) problem('KEYCLOAK_ISSUER', 'is required when authentication is on');
    if (authOn && !env.API_AUDIENCE) problem('API_AUDIENCE', 'is required when authentication is on');
  })
  .transform((env) => ({
    ...env,
    authEnabled: authEnabled(env),
    /** Readable lines in dev on a terminal, unless LOG_FORMAT says otherwise; JSON lines everywhere else. */
    logFormat: env.LOG_FORMAT ?? (env.APP_ENV === 'dev' && process.stderr.isTTY === true ? 'pretty' : 'json'),
    /** Traces are exported (OTLP/HTTP) only when an endpoint is configured. */
    tracing: env.OTEL_EXPORTER_OTLP_ENDPOINT !== undefined || env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT !== undefined,
  }));

export type Config = z.infer<typeof EnvSchema>;

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const parsed = EnvSchema.safeParse(env);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0]!;
  throw new ConfigError(`invalid configuration: ${String(issue.path[0])}: ${issue.message}`);
}
