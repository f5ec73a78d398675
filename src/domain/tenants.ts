/** Tenants and their lifecycle: trial → active → frozen, nothing else. */
import { randomUUID } from 'node:crypto';
import { StoreConstraintError, type Tenant, type TenantStatus } from '../db/store.js';
import { SLUG } from './formats.js';
import { recordChange } from './audit-trail.js';
import { now } from './clock.js';
import type { Deps, Principal } from './deps.js';
import { conflict, invalid, notFound } from './errors.js';

type Transition = 'activate' | 'cancel';

const LIFECYCLE: Record<Transition, { from: TenantStatus; to: TenantStatus; action: string }> = {
  activate: { from: 'trial', to: 'active', action: 'tenant.activated' },
  cancel: { from: 'active', to: 'frozen', action: 'tenant.canceled' },
};

const tenantTarget = (t: Tenant) => ({ id: t.id, type: 'tenant', name: t.slug });

export async function createTenant(deps: Deps, who: Principal, input: { slug: string; name: string }): Promise<Tenant> {
  const at = now();
  try {
    return await deps.store.transaction(async (tx) => {
      const tenant = await tx.insertTenant({
        id: randomUUID(),
        slug: input.slug,
        name: input.name,
        status: 'trial',
        createdAt: at,
        updatedAt: at,
      });
      await recordChange(tx, who, {
        tenantId: tenant.id,
        product: null,
        action: 'tenant.created',
        crud: 'c',
        target: tenantTarget(tenant),
        at,
      });
      return tenant;
    });
  } catch (err) {
    if (err instanceof StoreConstraintError && err.constraint === 'tenants_slug_unique') {
      throw conflict(`slug "${input.slug}" is already taken`);
    }
    if (err instanceof StoreConstraintError && err.constraint === 'tenants_slug_format') {
      throw invalid(['slug'], 'slug must be 3–63 lower-case letters, digits or inner hyphens');
    }
    throw err;
  }
}

export async function getTenant(deps: Deps, id: string): Promise<Tenant> {
  const tenant = await deps.store.getTenant(id);
  if (!tenant) throw notFound('tenant');
  return tenant;
}

export async function getTenantBySlug(deps: Deps, slug: string): Promise<Tenant> {
  // A string that is no slug names no tenant (and never reaches the store).
  const tenant = SLUG.test(slug) ? await deps.store.getTenantBySlug(slug) : null;
  if (!tenant) throw notFound('tenant');
  return tenant;
}

export async function transitionTenant(deps: Deps, who: Principal, id: string, transition: Transition): Promise<Tenant> {
  const rule = LIFECYCLE[transition];
  return deps.store.transaction(async (tx) => {
    const tenant = await tx.getTenant(id, { lock: true });
    if (!tenant) throw notFound('tenant');
    if (tenant.status !== rule.from) {
      throw conflict(`cannot ${transition} a tenant whose status is "${tenant.status}" (needs "${rule.from}")`);
    }
    const at = now();
    const updated = await tx.updateTenantStatus(id, rule.to, at);
    await recordChange(tx, who, { tenantId: id, product: null, action: rule.action, crud: 'u', target: tenantTarget(updated), at });
    return updated;
  });
}
