/** The product catalog, sales requests and self-serve trials. */
import { randomUUID } from 'node:crypto';
import { StoreConstraintError, type Entitlement, type Product, type ProductRequest, type StoreTx } from '../db/store.js';
import { recordChange } from './audit-trail.js';
import { addDays, now } from './clock.js';
import type { Deps, Principal } from './deps.js';
import { conflict, notFound } from './errors.js';

export function listCatalog(deps: Deps): Promise<Product[]> {
  return deps.store.listProducts({ requestableOnly: true });
}

/** Locks the tenant and finds the requestable product, or throws 404 / 409 frozen. */
async function requestContext(tx: StoreTx, tenantId: string, productKey: string) {
  const tenant = await tx.getTenant(tenantId, { lock: true });
  if (!tenant) throw notFound('tenant');
  const product = await tx.getProduct(productKey);
  if (!product || !product.requestable) throw notFound('product');
  if (tenant.status === 'frozen') throw conflict('tenant is frozen');
  return { tenant, product };
}

export async function requestProduct(
  deps: Deps,
  who: Principal,
  input: { tenantId: string; product: string; note: string | null },
): Promise<ProductRequest> {
  return deps.store.transaction(async (tx) => {
    const { product } = await requestContext(tx, input.tenantId, input.product);
    const entitlement = await tx.getEntitlement(input.tenantId, product.key);
    if (entitlement?.status === 'active') throw conflict(`tenant is already entitled to "${product.key}"`);
    if (await tx.findProductRequest(input.tenantId, product.key, 'pending')) {
      throw conflict(`a request for "${product.key}" is already pending`);
    }
    const at = now();
    const request = await tx.insertProductRequest({
      id: randomUUID(),
      tenantId: input.tenantId,
      product: product.key,
      status: 'pending',
      note: input.note,
      createdAt: at,
    });
    await recordChange(tx, who, {
      tenantId: input.tenantId,
      product: product.key,
      action: 'catalog.requested',
      crud: 'c',
      target: { id: request.id, type: 'product_request', name: product.key },
      at,
    });
    return request;
  });
}

export async function startTrial(
  deps: Deps,
  who: Principal,
  input: { tenantId: string; product: string },
): Promise<Entitlement> {
  try {
    return await deps.store.transaction(async (tx) => {
      const { product } = await requestContext(tx, input.tenantId, input.product);
      if (product.trialDays === 0) throw conflict(`"${product.key}" has no self-serve trial; ask sales`);
      if (await tx.getEntitlement(input.tenantId, product.key)) {
        throw conflict(`tenant already had an entitlement to "${product.key}" (one trial per product)`);
      }
      const at = now();
      const entitlement = await tx.insertEntitlement({
        id: randomUUID(),
        tenantId: input.tenantId,
        product: product.key,
        status: 'trial',
        source: 'trial',
        startsAt: at,
        expiresAt: addDays(at, product.trialDays),
        createdAt: at,
        updatedAt: at,
      });
      await recordChange(tx, who, {
        tenantId: input.tenantId,
        product: product.key,
        action: 'entitlement.trial_started',
        crud: 'c',
        target: { id: entitlement.id, type: 'entitlement', name: product.key },
        at,
      });
      return entitlement;
    });
  } catch (err) {
    if (err instanceof StoreConstraintError && err.constraint === 'entitlements_tenant_product_unique') {
      throw conflict(`tenant already had an entitlement to "${input.product}" (one trial per product)`);
    }
    throw err;
  }
}
