/**
 * Runs one tRPC procedure's own middleware chain (the service's middleware of src/trpc.ts,
 * input validation, output validation, the resolver) the way
 * tRPC's `callRecursive` does, with one difference: cheap object copies. tRPC's build
 * spreads the call options through a Babel helper (`_objectSpread2`, one `defineProperty`
 * per key) twice per middleware, about 15 % of a cached verify's CPU, and once more in its
 * output validator (another 4 %); the verify lane (src/rest/verify-lane.ts) uses this so the
 * gateway's hot path does not pay it. The output validator is therefore run as tRPC's
 * `createOutputMiddleware` does, with the parser tRPC itself makes (`getParseFn`) of the
 * procedure's own output schema.
 *
 * It relies on `procedure._def.middlewares` (and `_def.output`), which are tRPC-internal: the
 * runner checks their shape when it is built (at import), and tests/procedure-runner.test.ts
 * checks that it answers exactly what tRPC's own caller answers.
 */
import { getTRPCErrorFromUnknown, TRPCError, type AnyTRPCProcedure } from '@trpc/server';
import { getParseFn } from '@trpc/server/unstable-core-do-not-import';

type Result = { ok: true; data: unknown } | { ok: false; error: TRPCError };
interface CallOptions {
  ctx: object;
  input: unknown;
  getRawInput: () => Promise<unknown>;
}
type NextOptions = { ctx?: object; input?: unknown; getRawInput?: () => Promise<unknown> } | undefined;
/** What tRPC hands each middleware (its `callRecursive`): the call options, `meta` and `next`. */
type Middleware = (
  opts: CallOptions & { path: string; type: string; signal: undefined; batchIndex: number; meta: unknown; next: (next?: NextOptions) => Promise<Result> },
) => Promise<Result>;
interface ProcedureDef {
  middlewares: (Middleware & { _type?: string })[];
  meta?: unknown;
  output?: Parameters<typeof getParseFn>[0];
  type: 'query' | 'mutation' | 'subscription';
}

/** tRPC's output validator (`createOutputMiddleware`), its result spread natively. */
function outputValidator(parse: (value: unknown) => unknown): Middleware {
  return async ({ next }) => {
    const result = await next();
    if (!result.ok) return result;
    try {
      const data = await parse(result.data);
      return { ...result, data };
    } catch (cause) {
      throw new TRPCError({ message: 'Output validation failed', code: 'INTERNAL_SERVER_ERROR', cause });
    }
  };
}

function definitionOf(procedure: AnyTRPCProcedure): ProcedureDef {
  const def = (procedure as unknown as { _def?: Partial<ProcedureDef> })._def;
  const middlewares = def?.middlewares;
  if (!Array.isArray(middlewares) || middlewares.length === 0 || !middlewares.every((m) => typeof m === 'function') || !def?.type) {
    throw new Error('procedure-runner: this @trpc/server no longer keeps _def.middlewares as an array of functions');
  }
  return def as ProcedureDef;
}

/** `run(ctx, input)` resolves to the procedure's output or rejects with its TRPCError, like a caller. */
export function procedureRunner(procedure: AnyTRPCProcedure, path: string) {
  const def = definitionOf(procedure);
  const { meta, type } = def;
  const middlewares: Middleware[] = def.middlewares.map((m) => {
    if (m._type !== 'output') return m;
    if (!def.output) throw new Error('procedure-runner: this @trpc/server no longer keeps the output schema in _def.output');
    return outputValidator(getParseFn(def.output));
  });

  // The options objects are written out rather than spread: same fields, fixed shape.
  const call = async (index: number, opts: CallOptions): Promise<Result> => {
    const { ctx, input, getRawInput } = opts;
    try {
      return await middlewares[index]!({
        ctx,
        path,
        type,
        getRawInput,
        input,
        signal: undefined,
        batchIndex: 0,
        meta,
        next(next?: NextOptions) {
          return call(index + 1, {
            // Object.assign, not `{ ...ctx, ...next.ctx }`: V8 adds properties to a spread
            // clone the slow way (~1 µs each; the service middleware adds three).
            ctx: next?.ctx ? Object.assign({}, ctx, next.ctx) : ctx,
            input: next && 'input' in next ? next.input : input,
            getRawInput: next?.getRawInput ?? getRawInput,
          });
        },
      });
    } catch (cause) {
      return { ok: false, error: getTRPCErrorFromUnknown(cause) };
    }
  };

  return async (ctx: object, input: unknown): Promise<unknown> => {
    const result = await call(0, { ctx, input: undefined, getRawInput: () => Promise.resolve(input) });
    if (!result) throw new TRPCError({ code: 'INTERNAL_SERVER_ERROR', message: 'No result from middlewares' });
    if (!result.ok) throw result.error;
    return result.data;
  };
}
