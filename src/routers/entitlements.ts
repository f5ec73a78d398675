import { z } from 'zod';
import { EntitlementSchema, TenantQueryInput, toEntitlementDto } from '../api/catalog.js';
import { listEntitlements } from '../domain/entitlements.js';
import { procedure, router } from '../trpc.js';

export const entitlementsRouter = router({
  list: procedure
    .meta({
      openapi: {
        method: 'GET',
        path: '/v1/entitlements',
        tags: ['entitlements'],
        summary: "List a tenant's entitlements (expired trials read as expired)",
        errorResponses: { 400: 'Invalid input', 404: 'No such tenant' },
      },
    })
    .input(TenantQueryInput)
    .output(z.object({ items: z.array(EntitlementSchema) }))
    .query(async ({ ctx, input }) => {
      await ctx.allow('entitlement.read', input.tenant_id);
      return { items: (await listEntitlements(ctx.deps, input.tenant_id)).map(toEntitlementDto) };
    }),
});
