/** Wire-level building blocks shared by every concern's schemas. */
import { z } from 'zod';
import { parseRfc3339 } from './time.js';

const UUID = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;

export const codePoints = (s: string): number => {
  let n = 0;
  for (const _ of s) n++;
  return n;
};

/** U+0000 or an unpaired surrogate: Postgres text cannot hold them (a NUL fails, a surrogate turns into U+FFFD). */
const UNPAIRED_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;
/** Text that every store keeps exactly as sent. */
export const storableText = (s: string): boolean => !s.includes('\u0000') && !UNPAIRED_SURROGATE.test(s);
export const UNSTORABLE_MESSAGE = 'must not contain NUL characters or unpaired surrogates';

/** A canonical 8-4-4-4-12 UUID in any letter case, returned lower-case. */
export const uuidInput = z
  .string()
  .regex(UUID, 'must be a UUID (8-4-4-4-12 hex digits)')
  .transform((s) => s.toLowerCase())
  .meta({ format: 'uuid' });

/** An RFC 3339 timestamp with an offset, as a Date in UTC truncated to milliseconds. */
export const timeInput = z
  .string()
  .meta({ format: 'date-time', example: '2026-01-31T12:00:00.000Z' })
  .transform((s, ctx) => {
    const at = parseRfc3339(s);
    if (!at) {
      ctx.issues.push({ code: 'custom', message: 'must be an RFC 3339 timestamp with an offset', input: s });
      return z.NEVER;
    }
    return at;
  });

/** Trimmed text whose length in code points is within [min, max]. */
export const textInput = (min: number, max: number) =>
  z
    .string()
    .trim()
    .refine((s) => {
      const n = codePoints(s);
      return n >= min && n <= max;
    }, `must be ${min}–${max} characters`)
    .refine(storableText, UNSTORABLE_MESSAGE)
    .meta({ minLength: min, maxLength: max });

/** Optional trimmed text of at most `max` code points; empty after trimming means null. */
export const optionalTextInput = (max: number) =>
  textInput(0, max)
    .nullish()
    .transform((s) => (s ? s : null));

/** Strings of 1–max code points, not trimmed (identifiers chosen by callers). */
export const identifierInput = (max: number) =>
  z
    .string()
    .refine((s) => {
      const n = codePoints(s);
      return n >= 1 && n <= max;
    }, `must be 1–${max} characters`)
    .refine(storableText, UNSTORABLE_MESSAGE)
    .meta({ minLength: 1, maxLength: max });

/** Query booleans are exactly `true` or `false`. */
export const queryBoolean = z.enum(['true', 'false']).transform((v) => v === 'true');

/**
 * An integer in [min, max]: a number over tRPC, decimal digits only over REST. The preprocess
 * keeps trpc-to-openapi's query coercion (Number(), which takes `1e2`, `0x10`, ` 5`) away.
 * The input is typed `number` for tRPC clients; REST hands in the query string at run time.
 */
export const queryInteger = (min: number, max: number) =>
  z.preprocess(
    (v: number) => (typeof v === 'string' && /^[0-9]+$/.test(v) ? Number(v) : v),
    z.number().int().min(min).max(max),
  );

/**
 * A JSON boolean. The pipe keeps trpc-to-openapi's query coercion (which would turn any
 * string into a boolean) away from body fields.
 */
export const jsonBoolean = z.boolean().pipe(z.boolean());

export const timeOutput = z.iso.datetime({ precision: 3 });
export const uuidOutput = z.guid();

export const ErrorBody = z
  .object({
    code: z.enum([
      'BAD_REQUEST',
      'UNAUTHORIZED',
      'FORBIDDEN',
      'NOT_FOUND',
      'METHOD_NOT_SUPPORTED',
      'CONFLICT',
      'PAYLOAD_TOO_LARGE',
      'UNSUPPORTED_MEDIA_TYPE',
      'TOO_MANY_REQUESTS',
      'INTERNAL_SERVER_ERROR',
      'SERVICE_UNAVAILABLE',
    ]),
    message: z.string(),
    issues: z.array(z.object({ path: z.array(z.union([z.string(), z.number()])), message: z.string() })).optional(),
  })
  .meta({ id: 'Error' });

/** Documents the optional Idempotency-Key of creating requests (src/domain/idempotency.ts). */
export const IdempotencyHeaders = z.object({
  'Idempotency-Key': z
    .string()
    .min(1)
    .max(255)
    .optional()
    .meta({
      description:
        'Retries with the same key and body within 24 h replay the first answer; another body is 409. ' +
        'Scoped to the caller.',
    }),
});
