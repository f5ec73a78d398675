import { z } from 'zod';
import type { Tenant } from '../db/store.js';
import { SLUG } from '../domain/formats.js';
import { textInput, timeOutput, uuidInput, uuidOutput } from './common.js';
import { formatTime } from './time.js';

export const TenantSchema = z
  .object({
    id: uuidOutput,
    slug: z.string(),
    name: z.string(),
    status: z.enum(['trial', 'active', 'frozen']),
    created_at: timeOutput,
    updated_at: timeOutput,
  })
  .meta({ id: 'Tenant' });

export const CreateTenantInput = z.object({
  slug: z.string().regex(SLUG, 'must be 3–63 lower-case letters, digits or inner hyphens'),
  name: textInput(1, 200),
});

export const TenantIdInput = z.object({ id: uuidInput });
export const TenantSlugInput = z.object({ slug: z.string() });

export const toTenantDto = (t: Tenant): z.infer<typeof TenantSchema> => ({
  id: t.id,
  slug: t.slug,
  name: t.name,
  status: t.status,
  created_at: formatTime(t.createdAt),
  updated_at: formatTime(t.updatedAt),
});
