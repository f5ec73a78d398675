/**
 * The one initTRPC of the service: context, meta, error formatting and the base procedure.
 * Domain errors become TRPCErrors here, in one place; trpc-to-openapi maps those to HTTP
 * statuses, and the error formatter keeps stacks and internals out of every body.
 */
import { initTRPC, TRPCError, type TRPCDefaultErrorData, type TRPCDefaultErrorShape } from '@trpc/server';
import type { OpenApiMeta } from 'trpc-to-openapi';
import { z } from 'zod';
import type { AuthOutcome } from './auth/authenticate.js';
import { authorize, type Operation } from './auth/access.js';
import { StoreUnavailableError } from './db/store.js';
import type { Deps } from './domain/deps.js';
import { runIdempotently, type IdempotencyRequest } from './domain/idempotency.js';
import { DomainError, type ValidationIssue } from './domain/errors.js';
import type { RequestRecord } from './observability/http.js';
import { tracing } from './observability/tracing.js';

export interface Context {
  deps: Deps;
  /** The caller, or why there is none (checked by every procedure before its input). */
  auth: AuthOutcome;
  /** The request's Idempotency-Key header, if any. */
  idempotencyKey: string | null;
  /** Which adapter serves the call; it decides the error body's shape. */
  transport: 'rest' | 'trpc';
  /** The request's record for its log line and metrics (src/observability/http.ts), when it came over HTTP. */
  request?: RequestRecord;
}

export type Meta = OpenApiMeta<{
  /** HTTP status of success over REST; 200 unless set (creations say 201). */
  successStatus?: 201;
}>;

const GENERIC_500 = 'Internal server error';

/**
 * The error shape tRPC clients see (typed, so `TRPCClientError<AppRouter>['data']` has
 * `issues`): `data` is `{code, httpStatus, path, issues?}` and never a stack.
 */
export type ErrorShape = Omit<TRPCDefaultErrorShape, 'data'> & {
  data: Omit<TRPCDefaultErrorData, 'stack'> & { issues?: ValidationIssue[] };
};

/**
 * Input-validation failures carry `issues` as API.md shapes them: `{path, message}`.
 * trpc-to-openapi recognises a validation error by its cause's name being "ZodError" and
 * copies `cause.issues` into the REST body, hence the name.
 */
export class InputIssues extends Error {
  override readonly name = 'ZodError';
  constructor(readonly issues: ValidationIssue[]) {
    super('Input validation failed');
  }
}

const t = initTRPC
  .context<Context>()
  .meta<Meta>()
  .create({
    errorFormatter({ shape, error, ctx }): ErrorShape {
      const message = error.code === 'INTERNAL_SERVER_ERROR' ? GENERIC_500 : error.message;
      const issues = error.cause instanceof InputIssues ? error.cause.issues : undefined;
      if (ctx?.transport !== 'trpc') {
        // REST: trpc-to-openapi spreads this, then sets `code` and (for zod errors) `issues`.
        return { code: error.code, message } as unknown as ErrorShape;
      }
      return {
        code: shape.code,
        message,
        data: { code: error.code, httpStatus: shape.data.httpStatus, path: shape.data.path, issues },
      };
    },
  });

const badInput = (issues: ValidationIssue[]) =>
  new TRPCError({ code: 'BAD_REQUEST', message: 'Input validation failed', cause: new InputIssues(issues) });

function toTRPCError(error: TRPCError): TRPCError | null {
  const cause = error.cause;
  if (cause instanceof z.ZodError && error.code === 'BAD_REQUEST') {
    return badInput(cause.issues.map(({ path, message }) => ({ path: path as (string | number)[], message })));
  }
  if (cause instanceof DomainError) {
    if (cause.issues) return badInput(cause.issues);
    return new TRPCError({ code: cause.code, message: cause.message, cause });
  }
  if (cause instanceof StoreUnavailableError) {
    return new TRPCError({ code: 'SERVICE_UNAVAILABLE', message: 'the database is unavailable; retry shortly', cause });
  }
  return null;
}

/**
 * The one middleware of every procedure (each middleware costs every call, the verify hot
 * path's included, so there is only one):
 * - 401 before any input is looked at, and the context narrowed to an authenticated caller
 *   with `allow(op, tenantId)` (the access-matrix check of src/auth/access.ts) and
 *   `once(input, work)` (Idempotency-Key, src/domain/idempotency.ts);
 * - domain errors become TRPCErrors;
 * - with tracing on, the call runs in a span of its own (src/observability/tracing-sdk.ts).
 */
const base = t.middleware(({ ctx, path, type, next }) => {
  const call = async () => {
    if (!ctx.auth.ok) throw new TRPCError({ code: ctx.auth.code, message: ctx.auth.message });
    const { principal } = ctx.auth;
    const { store } = ctx.deps;
    const allow = (op: Operation, tenantId: string | null, resource?: string) => {
      // The request line names the tenant the operation concerns.
      if (tenantId !== null && ctx.request) ctx.request.tenantId = tenantId;
      return authorize(principal, op, tenantId, async () => tenantId !== null && (await store.getTenant(tenantId)) !== null, resource);
    };
    const once = <T>(input: unknown, work: () => Promise<T>, secret?: IdempotencyRequest<T>['secret']) =>
      runIdempotently(
        ctx.deps,
        { key: ctx.idempotencyKey, scope: `${principal.actor.type}:${principal.actor.id}`, operation: path, input, secret },
        work,
      );
    const result = await next({ ctx: { principal, allow, once } });
    if (!result.ok) {
      const mapped = toTRPCError(result.error);
      if (mapped) throw mapped;
    }
    return result;
  };
  const active = tracing;
  return active ? active.procedure(path, type, ctx.transport, call) : call();
});

export const router = t.router;
export const createCallerFactory = t.createCallerFactory;
export const procedure = t.procedure.use(base);
