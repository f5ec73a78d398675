import { z } from 'zod';
import type { AuditEvent } from '../db/store.js';
import {
  codePoints,
  identifierInput,
  jsonBoolean,
  optionalTextInput,
  queryInteger,
  storableText,
  timeInput,
  timeOutput,
  UNSTORABLE_MESSAGE,
  uuidInput,
  uuidOutput,
} from './common.js';
import { ACTION } from '../domain/formats.js';
import { productKeyInput } from './catalog.js';
import { formatTime } from './time.js';

const ACTOR_TYPES = ['user', 'service', 'api_key', 'system'] as const;
const CRUD = ['c', 'r', 'u', 'd'] as const;

export const AuditEventSchema = z
  .object({
    id: uuidOutput,
    tenant_id: uuidOutput.nullable(),
    product: z.string().nullable(),
    action: z.string(),
    crud: z.enum(CRUD).nullable(),
    actor: z.object({ id: z.string(), name: z.string().nullable(), type: z.enum(ACTOR_TYPES) }),
    target: z.object({ id: z.string(), type: z.string(), name: z.string().nullable() }).nullable(),
    description: z.string().nullable(),
    source_ip: z.string().nullable(),
    is_failure: z.boolean(),
    fields: z.record(z.string(), z.string()),
    occurred_at: timeOutput,
    received_at: timeOutput,
  })
  .meta({ id: 'AuditEvent' });

export const AuditPageSchema = z
  .object({ items: z.array(AuditEventSchema), next_cursor: z.string().nullable() })
  .meta({ id: 'AuditPage' });

const actionInput = z.string().regex(ACTION, 'must match ^[a-z][a-z0-9_.:-]{0,127}$');

/**
 * A plain object cannot hold a `__proto__` key (assigning it sets the prototype), so zod's
 * record skips it without a word: the field would be lost. An audit log must not lose what
 * it was sent, so such a field is refused instead. (Typed, so tRPC clients still see the
 * record type as the input.)
 */
const refuseProtoKey = (fields: Record<string, string>, ctx: z.core.$RefinementCtx) => {
  if (fields !== null && typeof fields === 'object' && Object.hasOwn(fields, '__proto__')) {
    ctx.issues.push({ code: 'custom', message: 'a field may not be named "__proto__"', path: ['__proto__'], input: fields });
  }
  return fields;
};

const fieldsInput = z
  .record(
    z
      .string()
      .refine((k) => codePoints(k) >= 1 && codePoints(k) <= 40, 'field names are 1–40 characters')
      .refine(storableText, UNSTORABLE_MESSAGE),
    z
      .string()
      .refine((v) => codePoints(v) <= 500, 'field values are at most 500 characters')
      .refine(storableText, UNSTORABLE_MESSAGE),
  )
  .refine((f) => Object.keys(f).length <= 50, 'at most 50 fields');

export const AppendAuditInput = z.object({
  tenant_id: uuidInput.nullish(),
  product: productKeyInput.nullish(),
  action: actionInput,
  crud: z.enum(CRUD).nullish(),
  actor: z.object({
    id: identifierInput(200),
    name: optionalTextInput(200),
    type: z.enum(ACTOR_TYPES).nullish(),
  }),
  target: z
    .object({ id: identifierInput(200), type: identifierInput(200), name: optionalTextInput(200) })
    .nullish(),
  description: optionalTextInput(2000),
  source_ip: z.union([z.ipv4(), z.ipv6()]).nullish(),
  is_failure: jsonBoolean.nullish(),
  fields: z.preprocess(refuseProtoKey, fieldsInput).nullish(),
  occurred_at: timeInput.nullish(),
});

export const QueryAuditInput = z.object({
  tenant_id: uuidInput.optional(),
  product: productKeyInput.optional(),
  actor_id: identifierInput(200).optional(),
  action: actionInput.optional(),
  since: timeInput.optional().meta({ description: 'Inclusive, on occurred_at.' }),
  until: timeInput.optional().meta({ description: 'Exclusive, on occurred_at.' }),
  limit: queryInteger(1, 500).optional().meta({ description: '1–500, default 50.' }),
  cursor: z.string().max(1000).optional().meta({ description: 'next_cursor of the previous page, with the same filters.' }),
});

export const toAuditEventDto = (e: AuditEvent): z.infer<typeof AuditEventSchema> => ({
  id: e.id,
  tenant_id: e.tenantId,
  product: e.product,
  action: e.action,
  crud: e.crud,
  actor: { ...e.actor },
  target: e.target && { ...e.target },
  description: e.description,
  source_ip: e.sourceIp,
  is_failure: e.isFailure,
  fields: e.fields,
  occurred_at: formatTime(e.occurredAt),
  received_at: formatTime(e.receivedAt),
});
