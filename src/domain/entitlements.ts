/** Entitlements as reported: a trial past its expires_at reads as `expired`, everywhere. */
import type { Entitlement, EntitlementStatus } from '../db/store.js';
import type { Deps } from './deps.js';
import { notFound } from './errors.js';

export function effectiveStatus(e: Entitlement, at: Date): EntitlementStatus {
  if (e.status === 'trial' && e.expiresAt !== null && e.expiresAt <= at) return 'expired';
  return e.status;
}

/** Does this entitlement let the tenant use the product right now? */
export function grantsAccess(e: Entitlement | null, at: Date): boolean {
  if (!e) return false;
  const status = effectiveStatus(e, at);
  return status === 'active' || status === 'trial';
}

export async function listEntitlements(deps: Deps, tenantId: string): Promise<Entitlement[]> {
  if (!(await deps.store.getTenant(tenantId))) throw notFound('tenant');
  const at = new Date();
  const rows = await deps.store.listEntitlements(tenantId);
  return rows.map((e) => ({ ...e, status: effectiveStatus(e, at) }));
}
