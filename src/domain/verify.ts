/**
 * Verifying an API key, in API.md's order: MALFORMED → NOT_FOUND → REVOKED → EXPIRED →
 * TENANT_FROZEN → NOT_ENTITLED; the first check that fails gives the code.
 */
import { isWellFormedKey, prefixOf } from '../keys/api-key-format.js';
import { now } from './clock.js';
import type { Deps } from './deps.js';
import { grantsAccess } from './entitlements.js';

export type VerifyFailure = 'MALFORMED' | 'NOT_FOUND' | 'REVOKED' | 'EXPIRED' | 'TENANT_FROZEN' | 'NOT_ENTITLED';

export type VerifyResult =
  | {
      valid: true;
      keyId: string;
      tenantId: string;
      tenantSlug: string;
      product: string | null;
      scopes: string[];
      expiresAt: Date | null;
    }
  | { valid: false; code: VerifyFailure };

const fail = (code: VerifyFailure): VerifyResult => ({ valid: false, code });

/** `key` and `product` arrive unchecked: anything that is not a string is MALFORMED. */
export async function verifyApiKey(deps: Deps, input: { key?: unknown; product?: unknown }): Promise<VerifyResult> {
  const { key, product: asked } = input;
  if (typeof key !== 'string' || !isWellFormedKey(key)) return fail('MALFORMED');
  if (asked !== undefined && asked !== null && typeof asked !== 'string') return fail('MALFORMED');

  const stored = await deps.store.getApiKeyByPrefix(prefixOf(key));
  if (!stored || !(await deps.hasher.verify(key, stored.hash))) return fail('NOT_FOUND');
  const at = now();
  if (stored.revokedAt) return fail('REVOKED');
  if (stored.expiresAt && stored.expiresAt <= at) return fail('EXPIRED');
  const tenant = await deps.store.getTenant(stored.tenantId);
  if (!tenant) return fail('NOT_FOUND');
  if (tenant.status === 'frozen') return fail('TENANT_FROZEN');

  const product = asked ?? stored.product;
  if (product !== null) {
    if (stored.product !== null && product !== stored.product) return fail('NOT_ENTITLED');
    if (!grantsAccess(await deps.store.getEntitlement(tenant.id, product), at)) return fail('NOT_ENTITLED');
  }
  deps.usage.note(stored.id, at);
  return {
    valid: true,
    keyId: stored.id,
    tenantId: tenant.id,
    tenantSlug: tenant.slug,
    product,
    scopes: stored.scopes,
    expiresAt: stored.expiresAt,
  };
}
