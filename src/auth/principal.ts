/**
 * Who is calling, with what rights: built from a verified token's claims (Keycloak-shaped),
 * or the all-powerful `dev` principal when authentication is off.
 */
import type { Actor } from '../db/store.js';

export const ROLES = ['platform-admin', 'service', 'tenant-admin', 'tenant-member'] as const;
export type Role = (typeof ROLES)[number];

export interface Principal {
  actor: Actor;
  sourceIp: string | null;
  roles: ReadonlySet<Role>;
  /** The tenants a tenant-admin / tenant-member belongs to (lower-case UUIDs). */
  tenantIds: ReadonlySet<string>;
}

const UUID = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;

export const DEV_ACTOR: Actor = { id: 'dev', name: 'dev', type: 'user' };

export function devPrincipal(sourceIp: string | null): Principal {
  return { actor: { ...DEV_ACTOR }, sourceIp, roles: new Set(['platform-admin']), tenantIds: new Set() };
}

const stringsAt = (value: unknown): string[] =>
  Array.isArray(value) ? value.filter((v): v is string => typeof v === 'string') : [];

/** Claims of a verified access token → principal. `audience` names the client whose roles count. */
export function principalFromClaims(claims: Record<string, unknown>, audience: string, sourceIp: string | null): Principal {
  const realmRoles = stringsAt((claims.realm_access as { roles?: unknown } | undefined)?.roles);
  const resourceAccess = (claims.resource_access ?? {}) as Record<string, { roles?: unknown } | undefined>;
  const clientRoles = stringsAt(resourceAccess[audience]?.roles);
  const roles = new Set([...realmRoles, ...clientRoles].filter((r): r is Role => (ROLES as readonly string[]).includes(r)));

  const tenantClaim = claims.tenant_ids ?? (typeof claims.tenant_id === 'string' ? [claims.tenant_id] : []);
  const tenantIds = new Set(stringsAt(tenantClaim).filter((t) => UUID.test(t)).map((t) => t.toLowerCase()));

  const username = typeof claims.preferred_username === 'string' ? claims.preferred_username : null;
  const clientId = typeof claims.azp === 'string' ? claims.azp : typeof claims.client_id === 'string' ? claims.client_id : null;
  const isServiceAccount = roles.has('service') || (username?.startsWith('service-account-') ?? false);
  return {
    actor: {
      id: String(claims.sub),
      name: (isServiceAccount ? (clientId ?? username) : (username ?? clientId)) ?? null,
      type: isServiceAccount ? 'service' : 'user',
    },
    sourceIp,
    roles,
    tenantIds,
  };
}
