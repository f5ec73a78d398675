import { IdempotencyHeaders } from '../api/common.js';
import { z } from 'zod';
import {
  ApiKeyIdInput,
  ApiKeySchema,
  CreateApiKeyInput,
  CreatedApiKeySchema,
  ListApiKeysInput,
  VerifyInput,
  VerifyResultSchema,
  toApiKeyDto,
  toVerifyDto,
} from '../api/api-keys.js';
import { createApiKey, listApiKeys, revokeApiKey, tenantOfApiKey } from '../domain/api-keys.js';
import { verifyApiKey } from '../domain/verify.js';
import { procedure, router } from '../trpc.js';

const tags = ['api-keys'];

export const VERIFY_PATH = '/v1/internal/api-keys/verify';

/** A retried key creation must not show the plaintext again: only the key id is kept. */
const ISSUED_ONCE = {
  keep: (result: { api_key: { id: string } }) => ({ api_key_id: result.api_key.id }),
  refusal: (kept: unknown) =>
    `this Idempotency-Key already issued API key ${(kept as { api_key_id: string }).api_key_id}; ` +
    'its plaintext is shown only once (revoke it and create a new key if it was lost)',
};

export const apiKeysRouter = router({
  create: procedure
    .meta({
      openapi: {
        method: 'POST',
        path: '/v1/api-keys',
        tags, requestHeaders: IdempotencyHeaders,
        summary: 'Issue an API key (the plaintext is in this response only)',
        errorResponses: { 400: 'Invalid input', 404: 'No such tenant or product', 409: 'Tenant is frozen', 503: 'Key hashing is saturated' },
      },
      successStatus: 201,
    })
    .input(CreateApiKeyInput)
    .output(CreatedApiKeySchema)
    .mutation(async ({ ctx, input }) => {
      await ctx.allow('api_key.manage', input.tenant_id);
      const issue = async () => {
        const { apiKey, plaintext } = await createApiKey(ctx.deps, ctx.principal, {
          tenantId: input.tenant_id,
          name: input.name,
          product: input.product ?? null,
          scopes: input.scopes,
          expiresAt: input.expires_at ?? null,
        });
        return { api_key: toApiKeyDto(apiKey), plaintext };
      };
      return ctx.once(input, issue, ISSUED_ONCE);
    }),

  list: procedure
    .meta({
      openapi: {
        method: 'GET',
        path: '/v1/api-keys',
        tags,
        summary: "List a tenant's API keys, newest first",
        errorResponses: { 400: 'Invalid input', 404: 'No such tenant' },
      },
    })
    .input(ListApiKeysInput)
    .output(z.object({ items: z.array(ApiKeySchema) }))
    .query(async ({ ctx, input }) => {
      await ctx.allow('api_key.list', input.tenant_id);
      return { items: (await listApiKeys(ctx.deps, input.tenant_id, input.include_revoked ?? false)).map(toApiKeyDto) };
    }),

  revoke: procedure
    .meta({
      openapi: {
        method: 'DELETE',
        path: '/v1/api-keys/{id}',
        tags,
        summary: 'Revoke an API key (idempotent)',
        errorResponses: { 400: 'Malformed id', 404: 'No such key' },
      },
    })
    .input(ApiKeyIdInput)
    .output(ApiKeySchema)
    .mutation(async ({ ctx, input }) => {
      // Another tenant's key is "api key not found", like a key that does not exist.
      await ctx.allow('api_key.manage', await tenantOfApiKey(ctx.deps, input.id), 'api key');
      return toApiKeyDto(await revokeApiKey(ctx.deps, ctx.principal, input.id));
    }),

  verify: procedure
    .meta({
      openapi: {
        method: 'POST',
        path: VERIFY_PATH,
        tags,
        summary: 'Verify an API key (always 200; any content type)',
        description:
          'Answers 200 for any body up to 1 MiB, whatever its content type: `{valid:true,…}` or `{valid:false, code}`. ' +
          'A body that is not JSON, or whose key/product is not a string, is MALFORMED.',
        contentTypes: ['application/json', 'text/plain', 'application/octet-stream'],
        errorResponses: { 413: 'Body larger than 1 MiB', 503: 'Key hashing is saturated' },
      },
    })
    .input(VerifyInput)
    .output(VerifyResultSchema)
    .mutation(async ({ ctx, input }) => {
      await ctx.allow('api_key.verify', null);
      const result = await verifyApiKey(ctx.deps, input);
      ctx.request?.verified(result.valid ? 'VALID' : result.code, result.valid ? result.tenantId : undefined);
      return toVerifyDto(result);
    }),
});
