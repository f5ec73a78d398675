import { z } from 'zod';
import type { Entitlement, Product, ProductRequest } from '../db/store.js';
import { PRODUCT_KEY } from '../domain/formats.js';
import { optionalTextInput, timeOutput, uuidInput, uuidOutput } from './common.js';
import { formatNullableTime, formatTime } from './time.js';

export const ProductSchema = z
  .object({
    key: z.string(),
    name: z.string(),
    description: z.string(),
    requestable: z.boolean(),
    trial_days: z.number().int(),
  })
  .meta({ id: 'Product' });

export const EntitlementSchema = z
  .object({
    id: uuidOutput,
    tenant_id: uuidOutput,
    product: z.string(),
    status: z.enum(['trial', 'active', 'expired', 'revoked']),
    source: z.enum(['trial', 'sales', 'manual']),
    starts_at: timeOutput,
    expires_at: timeOutput.nullable(),
    created_at: timeOutput,
    updated_at: timeOutput,
  })
  .meta({ id: 'Entitlement' });

export const ProductRequestSchema = z
  .object({
    id: uuidOutput,
    tenant_id: uuidOutput,
    product: z.string(),
    status: z.enum(['pending', 'fulfilled', 'rejected']),
    note: z.string().nullable(),
    created_at: timeOutput,
  })
  .meta({ id: 'ProductRequest' });

export const productKeyInput = z.string().regex(PRODUCT_KEY, 'must be a product key');

export const ProductRequestInput = z.object({
  tenant_id: uuidInput,
  product: productKeyInput,
  note: optionalTextInput(2000),
});

export const TrialRequestInput = z.object({ tenant_id: uuidInput, product: productKeyInput });
export const TenantQueryInput = z.object({ tenant_id: uuidInput });

export const toProductDto = (p: Product): z.infer<typeof ProductSchema> => ({
  key: p.key,
  name: p.name,
  description: p.description,
  requestable: p.requestable,
  trial_days: p.trialDays,
});

export const toEntitlementDto = (e: Entitlement): z.infer<typeof EntitlementSchema> => ({
  id: e.id,
  tenant_id: e.tenantId,
  product: e.product,
  status: e.status,
  source: e.source,
  starts_at: formatTime(e.startsAt),
  expires_at: formatNullableTime(e.expiresAt),
  created_at: formatTime(e.createdAt),
  updated_at: formatTime(e.updatedAt),
});

export const toProductRequestDto = (r: ProductRequest): z.infer<typeof ProductRequestSchema> => ({
  id: r.id,
  tenant_id: r.tenantId,
  product: r.product,
  status: r.status,
  note: r.note,
  created_at: formatTime(r.createdAt),
});
