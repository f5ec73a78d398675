import { IdempotencyHeaders } from '../api/common.js';
import { CreateTenantInput, TenantIdInput, TenantSchema, TenantSlugInput, toTenantDto } from '../api/tenants.js';
import { createTenant, getTenant, getTenantBySlug, transitionTenant } from '../domain/tenants.js';
import { procedure, router } from '../trpc.js';

const tags = ['tenants'];

export const tenantsRouter = router({
  create: procedure
    .meta({
      openapi: { method: 'POST', path: '/v1/tenants', tags, requestHeaders: IdempotencyHeaders, summary: 'Create a tenant (starts in trial)', errorResponses: { 400: 'Invalid input', 409: 'Slug taken' } },
      successStatus: 201,
    })
    .input(CreateTenantInput)
    .output(TenantSchema)
    .mutation(async ({ ctx, input }) => {
      await ctx.allow('tenant.create', null);
      return ctx.once(input, async () => toTenantDto(await createTenant(ctx.deps, ctx.principal, input)));
    }),

  bySlug: procedure
    .meta({
      openapi: { method: 'GET', path: '/v1/tenants/by-slug/{slug}', tags, summary: 'Get a tenant by slug', errorResponses: { 400: 'Invalid input', 404: 'No such tenant' } },
    })
    .input(TenantSlugInput)
    .output(TenantSchema)
    .query(async ({ ctx, input }) => {
      const tenant = await getTenantBySlug(ctx.deps, input.slug);
      await ctx.allow('tenant.read', tenant.id);
      return toTenantDto(tenant);
    }),

  get: procedure
    .meta({
      openapi: { method: 'GET', path: '/v1/tenants/{id}', tags, summary: 'Get a tenant', errorResponses: { 400: 'Malformed id', 404: 'No such tenant' } },
    })
    .input(TenantIdInput)
    .output(TenantSchema)
    .query(async ({ ctx, input }) => {
      await ctx.allow('tenant.read', input.id);
      return toTenantDto(await getTenant(ctx.deps, input.id));
    }),

  activate: procedure
    .meta({
      openapi: {
        method: 'POST',
        path: '/v1/tenants/{id}/activate',
        tags,
        summary: 'Activate a tenant (trial → active)',
        errorResponses: { 400: 'Malformed id', 404: 'No such tenant', 409: 'Not in trial' },
      },
    })
    .input(TenantIdInput)
    .output(TenantSchema)
    .mutation(async ({ ctx, input }) => {
      await ctx.allow('tenant.lifecycle', input.id);
      return toTenantDto(await transitionTenant(ctx.deps, ctx.principal, input.id, 'activate'));
    }),

  cancel: procedure
    .meta({
      openapi: {
        method: 'POST',
        path: '/v1/tenants/{id}/cancel',
        tags,
        summary: 'Cancel a tenant (active → frozen)',
        errorResponses: { 400: 'Malformed id', 404: 'No such tenant', 409: 'Not active' },
      },
    })
    .input(TenantIdInput)
    .output(TenantSchema)
    .mutation(async ({ ctx, input }) => {
      await ctx.allow('tenant.lifecycle', input.id);
      return toTenantDto(await transitionTenant(ctx.deps, ctx.principal, input.id, 'cancel'));
    }),
});
