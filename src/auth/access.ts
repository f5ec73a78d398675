/**
 * The access matrix, in one table, and the check that applies it. Order of refusals
 * follows API.md's precedence: a tenant the caller cannot see is 404 (the same as one that
 * does not exist — no existence oracle), a visible one without the right is 403.
 */
import { DomainError, invalid, notFound } from '../domain/errors.js';
import type { Principal, Role } from './principal.js';

export type Operation =
  | 'tenant.create'
  | 'tenant.lifecycle'
  | 'tenant.read'
  | 'entitlement.read'
  | 'catalog.list'
  | 'catalog.request'
  | 'api_key.manage'
  | 'api_key.list'
  | 'api_key.verify'
  | 'audit.append'
  | 'audit.query';

const EVERYONE: Role[] = ['platform-admin', 'service', 'tenant-admin', 'tenant-member'];

/** Which roles may do what. Tenant roles apply to their own tenants only. */
export const ACCESS: Record<Operation, readonly Role[]> = {
  'tenant.create': ['platform-admin'],
  'tenant.lifecycle': ['platform-admin'],
  'tenant.read': EVERYONE,
  'entitlement.read': EVERYONE,
  'catalog.list': EVERYONE,
  'catalog.request': ['platform-admin', 'tenant-admin'],
  'api_key.manage': ['platform-admin', 'tenant-admin'],
  'api_key.list': ['platform-admin', 'tenant-admin', 'tenant-member'],
  'api_key.verify': ['platform-admin', 'service'],
  'audit.append': ['platform-admin', 'service'],
  'audit.query': ['platform-admin', 'tenant-admin'],
};

const GLOBAL_ROLES: readonly Role[] = ['platform-admin', 'service'];
const forbidden = () => new DomainError('FORBIDDEN', 'your token does not grant this operation');

/** Can the caller see this tenant at all (regardless of the operation)? */
export function canSeeTenant(who: Principal, tenantId: string): boolean {
  return GLOBAL_ROLES.some((r) => who.roles.has(r)) || who.tenantIds.has(tenantId);
}

const allowedBy = (who: Principal, op: Operation, tenantId: string | null): boolean =>
  ACCESS[op].some((role) => {
    if (!who.roles.has(role)) return false;
    if (GLOBAL_ROLES.includes(role) || tenantId === null) return true;
    return who.tenantIds.has(tenantId);
  });

/**
 * Throws unless the caller may perform `op` on `tenantId` (null for operations that are not
 * about one tenant). `tenantExists` is asked only when the answer depends on it. `resource`
 * names what is not found when the tenant is hidden: the thing the caller asked for (e.g. an
 * API key by id), so that another tenant's answers the same as a missing one.
 */
export async function authorize(
  who: Principal,
  op: Operation,
  tenantId: string | null,
  tenantExists: () => Promise<boolean>,
  resource = 'tenant',
): Promise<void> {
  if (allowedBy(who, op, tenantId)) return;
  if (tenantId !== null && (!canSeeTenant(who, tenantId) || !(await tenantExists()))) throw notFound(resource);
  throw forbidden();
}

/**
 * The tenant an audit query is about: the requested one; for a tenant user who names none,
 * their only tenant (several → they must choose). Null means "every tenant" (global roles).
 */
export function auditTenantScope(who: Principal, requested: string | undefined): string | null {
  if (requested !== undefined) return requested;
  if (GLOBAL_ROLES.some((r) => who.roles.has(r))) return null;
  const [only, ...others] = who.tenantIds;
  if (only !== undefined && others.length === 0) return only;
  throw invalid(['tenant_id'], 'tenant_id is required: your token names several tenants, or none');
}
