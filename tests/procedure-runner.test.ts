/**
 * The verify lane runs the verify procedure through src/rest/procedure-runner.ts instead of
 * tRPC's server-side caller. The runner relies on tRPC internals (`_def.middlewares`), so
 * this pins its behaviour to the caller's: same outputs, same errors (code, message, cause
 * issues), for every verify outcome, for malformed inputs, for a caller without
 * authentication or without the right role, and for other kinds of procedures.
 */
import { TRPCError } from '@trpc/server';
import { afterAll, describe, expect, it } from 'vitest';
import type { AuthOutcome } from '../src/auth/authenticate.js';
import { devPrincipal, principalFromClaims } from '../src/auth/principal.js';
import { MemoryStore } from '../src/db/memory-store.js';
import type { Deps } from '../src/domain/deps.js';
import { Argon2Pool } from '../src/keys/argon2-pool.js';
import { BatchedKeyUsage } from '../src/keys/key-usage.js';
import { VerifyCache } from '../src/keys/verify-cache.js';
import { procedureRunner } from '../src/rest/procedure-runner.js';
import { appRouter } from '../src/routers/index.js';
import { z } from 'zod';
import { createCallerFactory, procedure, router, type Context } from '../src/trpc.js';

const store = new MemoryStore();
const hasher = new Argon2Pool({ threads: 1 });
const deps: Deps = { store, hasher, usage: new BatchedKeyUsage(store, 60_000), verifyCache: new VerifyCache(store.changes) };
afterAll(() => hasher.close());

const ctxOf = (auth: AuthOutcome): Context => ({ deps, auth, idempotencyKey: null, transport: 'rest' });
const ADMIN = ctxOf({ ok: true, principal: devPrincipal('127.0.0.1') });
const MEMBER = ctxOf({ ok: true, principal: principalFromClaims({ sub: 'u1', realm_access: { roles: ['tenant-member'] }, tenant_ids: [] }, 'api', null) });
const ANONYMOUS = ctxOf({ ok: false, code: 'UNAUTHORIZED', message: 'missing bearer token' });
const createCaller = createCallerFactory(appRouter);

type Outcome = { ok: true; data: unknown } | { ok: false; code: string; message: string; issues?: unknown };
const settle = async (work: () => Promise<unknown>): Promise<Outcome> => {
  try {
    return { ok: true, data: await work() };
  } catch (err) {
    expect(err).toBeInstanceOf(TRPCError);
    const e = err as TRPCError;
    return { ok: false, code: e.code, message: e.message, issues: (e.cause as { issues?: unknown } | undefined)?.issues };
  }
};

const verifyRunner = procedureRunner(appRouter.apiKeys.verify, 'apiKeys.verify');
const viaRunner = (ctx: Context, input: unknown) => settle(() => verifyRunner(ctx, input));
const viaCaller = (ctx: Context, input: unknown) => settle(() => createCaller(ctx).apiKeys.verify(input as never));

describe('procedure runner (the verify lane) answers what the tRPC caller answers', () => {
  it('every verify outcome, cold and cached', async () => {
    const caller = createCaller(ADMIN);
    const tenant = await caller.tenants.create({ slug: 'runner-t', name: 'Runner' });
    await caller.catalog.trialRequest({ tenant_id: tenant.id, product: 'analytics' });
    const key = await caller.apiKeys.create({ tenant_id: tenant.id, name: 'k', product: 'analytics' });
    const other = await caller.apiKeys.create({ tenant_id: tenant.id, name: 'k2' });
    const wrong = `${key.plaintext.slice(0, -4)}${key.plaintext.endsWith('AAAA') ? 'BBBB' : 'AAAA'}`;
    const inputs: unknown[] = [
      { key: key.plaintext },
      { key: key.plaintext, product: 'analytics' },
      { key: key.plaintext, product: 'billing' },
      { key: other.plaintext, product: 'billing' },
      { key: other.plaintext, product: null },
      { key: wrong },
      { key: 'not-a-key' },
      { key: 42 },
      { product: 'analytics' },
      { key: key.plaintext, product: ['analytics'] },
      { key: key.plaintext, extra: true },
      [],
      'a string',
      null,
      undefined,
    ];
    for (const input of inputs) {
      const runner = await viaRunner(ADMIN, input);
      expect(runner, JSON.stringify(input)).toEqual(await viaCaller(ADMIN, input));
      // Again: now from the cache.
      expect(await viaRunner(ADMIN, input), JSON.stringify(input)).toEqual(runner);
    }
    await caller.apiKeys.revoke({ id: key.api_key.id });
    await caller.tenants.activate({ id: tenant.id });
    await caller.tenants.cancel({ id: tenant.id });
    for (const input of [{ key: key.plaintext }, { key: other.plaintext }]) {
      const runner = await viaRunner(ADMIN, input);
      expect(runner.ok && (runner.data as { valid: boolean }).valid).toBe(false);
      expect(runner).toEqual(await viaCaller(ADMIN, input));
    }
  });

  it('401 without a caller and 403 without the role, before the input is looked at', async () => {
    for (const ctx of [ANONYMOUS, MEMBER]) {
      for (const input of [{ key: 'x' }, 'not json', undefined]) {
        const runner = await viaRunner(ctx, input);
        expect(runner.ok).toBe(false);
        expect(runner).toEqual(await viaCaller(ctx, input));
      }
    }
  });

  it('other procedures: a query, a creation, and invalid input', async () => {
    const get = procedureRunner(appRouter.tenants.get, 'tenants.get');
    const create = procedureRunner(appRouter.tenants.create, 'tenants.create');
    const caller = createCaller(ADMIN);
    const acme = '00000000-0000-0000-0000-000000000001';
    for (const input of [{ id: acme }, { id: 'not-a-uuid' }, { id: '00000000-0000-0000-0000-00000000abcd' }, {}]) {
      expect(await settle(() => get(ADMIN, input))).toEqual(await settle(() => caller.tenants.get(input as never)));
    }
    for (const input of [{ slug: 'Bad Slug', name: '' }, { slug: 'runner-x' }, 7]) {
      expect(await settle(() => create(ADMIN, input))).toEqual(await settle(() => caller.tenants.create(input as never)));
    }
    const made = await settle(() => create(ADMIN, { slug: 'runner-made', name: 'Made' }));
    expect(made).toMatchObject({ ok: true, data: { slug: 'runner-made', status: 'trial' } });
    expect(await settle(() => create(ADMIN, { slug: 'runner-made', name: 'Again' }))).toEqual(
      await settle(() => caller.tenants.create({ slug: 'runner-made', name: 'Again' })),
    );
  });

  it('output validation: the parsed output (defaults, stripped keys), and a failing output is a 500', async () => {
    const outputs = router({
      shaped: procedure
        .input(z.object({ n: z.number() }))
        .output(z.object({ n: z.number(), label: z.string().default('none') }))
        .query(({ input }) => ({ n: input.n, secret: 'stripped' }) as unknown as { n: number; label: string }),
      broken: procedure.output(z.object({ n: z.number() })).query(() => ({ n: 'not a number' }) as unknown as { n: number }),
    });
    const caller = createCallerFactory(outputs)(ADMIN);
    const shaped = procedureRunner(outputs.shaped, 'shaped');
    const broken = procedureRunner(outputs.broken, 'broken');
    const ran = await settle(() => shaped(ADMIN, { n: 3 }));
    expect(ran).toEqual({ ok: true, data: { n: 3, label: 'none' } });
    expect(ran).toEqual(await settle(() => caller.shaped({ n: 3 })));
    const failed = await settle(() => broken(ADMIN, undefined));
    expect(failed).toMatchObject({ ok: false, code: 'INTERNAL_SERVER_ERROR', message: 'Output validation failed' });
    expect(failed).toEqual(await settle(() => caller.broken()));
  });
});
