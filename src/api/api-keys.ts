import { z } from 'zod';
import type { ApiKey } from '../db/store.js';
import type { VerifyResult } from '../domain/verify.js';
import { textInput, timeInput, timeOutput, uuidInput, uuidOutput, queryBoolean } from './common.js';
import { productKeyInput } from './catalog.js';
import { formatNullableTime, formatTime } from './time.js';

const SCOPE = /^[a-z0-9:._-]{1,64}$/;

export const ApiKeySchema = z
  .object({
    id: uuidOutput,
    tenant_id: uuidOutput,
    name: z.string(),
    prefix: z.string(),
    product: z.string().nullable(),
    scopes: z.array(z.string()),
    created_at: timeOutput,
    expires_at: timeOutput.nullable(),
    last_used_at: timeOutput.nullable(),
    revoked_at: timeOutput.nullable(),
  })
  .meta({ id: 'ApiKey' });

export const CreatedApiKeySchema = z
  .object({
    api_key: ApiKeySchema,
    plaintext: z.string().meta({ description: 'The key itself. Shown once, never stored.' }),
  })
  .meta({ id: 'CreatedApiKey' });

export const CreateApiKeyInput = z.object({
  tenant_id: uuidInput,
  name: textInput(1, 100),
  product: productKeyInput.nullish(),
  scopes: z
    .array(z.string().regex(SCOPE, 'scopes match ^[a-z0-9:._-]{1,64}$'))
    .max(20)
    .nullish()
    .transform((s) => [...new Set(s ?? [])]),
  expires_at: timeInput.nullish(),
});

export const ListApiKeysInput = z.object({
  tenant_id: uuidInput,
  include_revoked: queryBoolean.optional(),
});

export const ApiKeyIdInput = z.object({ id: uuidInput });

/**
 * Verify takes anything: a body that is not an object, or whose fields are not strings,
 * still gets 200 MALFORMED (src/domain/verify.ts checks the types). The documented shape
 * is `{key, product?}`.
 */
export const VerifyInput = z.preprocess(
  (body) => (body !== null && typeof body === 'object' && !Array.isArray(body) ? body : {}),
  z.object({
    key: z.unknown().optional().meta({ type: 'string', description: '`bp_` + 22 base64url characters' }),
    product: z
      .unknown()
      .optional()
      .meta({ type: ['string', 'null'], description: 'The product in question; defaults to the key’s bound product.' }),
  }),
);

const VerifyValid = z.object({
  valid: z.literal(true),
  key_id: uuidOutput,
  tenant_id: uuidOutput,
  tenant_slug: z.string(),
  product: z.string().nullable(),
  scopes: z.array(z.string()),
  expires_at: timeOutput.nullable(),
});

const VerifyInvalid = z.object({
  valid: z.literal(false),
  code: z.enum(['MALFORMED', 'NOT_FOUND', 'REVOKED', 'EXPIRED', 'TENANT_FROZEN', 'NOT_ENTITLED']),
});

export const VerifyResultSchema = z.discriminatedUnion('valid', [VerifyValid, VerifyInvalid]).meta({ id: 'VerifyResult' });

export const toApiKeyDto = (k: ApiKey): z.infer<typeof ApiKeySchema> => ({
  id: k.id,
  tenant_id: k.tenantId,
  name: k.name,
  prefix: k.prefix,
  product: k.product,
  scopes: k.scopes,
  created_at: formatTime(k.createdAt),
  expires_at: formatNullableTime(k.expiresAt),
  last_used_at: formatNullableTime(k.lastUsedAt),
  revoked_at: formatNullableTime(k.revokedAt),
});

export const toVerifyDto = (r: VerifyResult): z.infer<typeof VerifyResultSchema> =>
  r.valid
    ? {
        valid: true,
        key_id: r.keyId,
        tenant_id: r.tenantId,
        tenant_slug: r.tenantSlug,
        product: r.product,
        scopes: r.scopes,
        expires_at: formatNullableTime(r.expiresAt),
      }
    : { valid: false, code: r.code };
