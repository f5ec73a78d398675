import { IdempotencyHeaders } from '../api/common.js';
import { z } from 'zod';
import {
  EntitlementSchema,
  ProductRequestInput,
  ProductRequestSchema,
  ProductSchema,
  TrialRequestInput,
  toEntitlementDto,
  toProductDto,
  toProductRequestDto,
} from '../api/catalog.js';
import { listCatalog, requestProduct, startTrial } from '../domain/catalog.js';
import { procedure, router } from '../trpc.js';

const tags = ['catalog'];

export const catalogRouter = router({
  list: procedure
    .meta({ openapi: { method: 'GET', path: '/v1/catalog', tags, summary: 'List requestable products, by key' } })
    .input(z.object({}))
    .output(z.object({ items: z.array(ProductSchema) }))
    .query(async ({ ctx }) => {
      await ctx.allow('catalog.list', null);
      return { items: (await listCatalog(ctx.deps)).map(toProductDto) };
    }),

  request: procedure
    .meta({
      openapi: {
        method: 'POST',
        path: '/v1/catalog/request',
        tags, requestHeaders: IdempotencyHeaders,
        summary: 'Ask sales for a product',
        errorResponses: {
          400: 'Invalid input',
          404: 'No such tenant or requestable product',
          409: 'A request is pending, the tenant is already entitled, or the tenant is frozen',
        },
      },
      successStatus: 201,
    })
    .input(ProductRequestInput)
    .output(ProductRequestSchema)
    .mutation(async ({ ctx, input }) => {
      await ctx.allow('catalog.request', input.tenant_id);
      return ctx.once(input, async () =>
        toProductRequestDto(
          await requestProduct(ctx.deps, ctx.principal, { tenantId: input.tenant_id, product: input.product, note: input.note }),
        ),
      );
    }),

  trialRequest: procedure
    .meta({
      openapi: {
        method: 'POST',
        path: '/v1/catalog/trial-request',
        tags, requestHeaders: IdempotencyHeaders,
        summary: 'Start the one self-serve trial of a product',
        errorResponses: {
          400: 'Invalid input',
          404: 'No such tenant or requestable product',
          409: 'The tenant had this product before, is frozen, or the product has no trial',
        },
      },
      successStatus: 201,
    })
    .input(TrialRequestInput)
    .output(EntitlementSchema)
    .mutation(async ({ ctx, input }) => {
      await ctx.allow('catalog.request', input.tenant_id);
      return ctx.once(input, async () =>
        toEntitlementDto(await startTrial(ctx.deps, ctx.principal, { tenantId: input.tenant_id, product: input.product })),
      );
    }),
});
