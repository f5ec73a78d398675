import { IdempotencyHeaders } from '../api/common.js';
import { AppendAuditInput, AuditEventSchema, AuditPageSchema, QueryAuditInput, toAuditEventDto } from '../api/audit.js';
import { appendAudit, queryAudit } from '../domain/audit.js';
import { auditTenantScope } from '../auth/access.js';
import { procedure, router } from '../trpc.js';

const tags = ['audit'];

export const auditRouter = router({
  append: procedure
    .meta({
      openapi: {
        method: 'POST',
        path: '/v1/audit',
        tags, requestHeaders: IdempotencyHeaders,
        summary: 'Append an audit event',
        errorResponses: { 400: 'Invalid input', 404: 'No such tenant' },
      },
      successStatus: 201,
    })
    .input(AppendAuditInput)
    .output(AuditEventSchema)
    .mutation(async ({ ctx, input }) => {
      await ctx.allow('audit.append', input.tenant_id ?? null);
      return ctx.once(input, async () => toAuditEventDto(
        await appendAudit(ctx.deps, ctx.principal, {
          tenantId: input.tenant_id ?? null,
          product: input.product ?? null,
          action: input.action,
          crud: input.crud ?? null,
          actor: { id: input.actor.id, name: input.actor.name, type: input.actor.type ?? 'service' },
          target: input.target ?? null,
          description: input.description,
          sourceIp: input.source_ip ?? null,
          isFailure: input.is_failure ?? false,
          fields: input.fields ?? {},
          occurredAt: input.occurred_at ?? null,
        }),
      ));
    }),

  query: procedure
    .meta({
      openapi: {
        method: 'GET',
        path: '/v1/audit',
        tags,
        summary: 'Query the audit log, newest first, by keyset pages',
        errorResponses: { 400: 'Bad filter, bad cursor, or limit outside 1–500' },
      },
    })
    .input(QueryAuditInput)
    .output(AuditPageSchema)
    .query(async ({ ctx, input }) => {
      const tenantId = auditTenantScope(ctx.principal, input.tenant_id);
      await ctx.allow('audit.query', tenantId);
      const filter = {
        tenantId: tenantId ?? undefined,
        product: input.product,
        actorId: input.actor_id,
        action: input.action,
        since: input.since,
        until: input.until,
      };
      const page = await queryAudit(ctx.deps, filter, input.limit ?? 50, input.cursor ?? null);
      return { items: page.items.map(toAuditEventDto), next_cursor: page.nextCursor };
    }),
});
