/** API keys for headless products: issue, list, revoke. The plaintext is returned once. */
import { randomUUID } from 'node:crypto';
import { StoreConstraintError, type ApiKey, type StoreReader } from '../db/store.js';
import { generatePlaintext, prefixOf } from '../keys/api-key-format.js';
import { recordChange } from './audit-trail.js';
import { now } from './clock.js';
import type { Deps, Principal } from './deps.js';
import { conflict, invalid, notFound } from './errors.js';

export interface NewApiKey {
  tenantId: string;
  name: string;
  product: string | null;
  scopes: string[];
  expiresAt: Date | null;
}

const keyTarget = (k: ApiKey) => ({ id: k.id, type: 'api_key', name: k.name });

/** 404 for an unknown tenant or product, 409 for a frozen tenant. */
async function checkIssuable(db: StoreReader, input: NewApiKey, lock: boolean) {
  const tenant = await db.getTenant(input.tenantId, { lock });
  if (!tenant) throw notFound('tenant');
  if (input.product !== null && !(await db.getProduct(input.product))) throw notFound('product');
  if (tenant.status === 'frozen') throw conflict('tenant is frozen');
}

export async function createApiKey(
  deps: Deps,
  who: Principal,
  input: NewApiKey,
): Promise<{ apiKey: ApiKey; plaintext: string }> {
  const requestedAt = now();
  if (input.expiresAt !== null && input.expiresAt <= requestedAt) {
    throw invalid(['expires_at'], 'expires_at must be in the future');
  }
  // Cheap checks first, so a request that will fail never costs an argon2 run.
  await checkIssuable(deps.store, input, false);
  for (let attempt = 0; ; attempt++) {
    const plaintext = generatePlaintext();
    const hash = await deps.hasher.hash(plaintext);
    try {
      const apiKey = await deps.store.transaction(async (tx) => {
        await checkIssuable(tx, input, true);
        const at = now();
        const key = await tx.insertApiKey({
          id: randomUUID(),
          tenantId: input.tenantId,
          name: input.name,
          prefix: prefixOf(plaintext),
          hash,
          product: input.product,
          scopes: input.scopes,
          createdAt: at,
          expiresAt: input.expiresAt,
          lastUsedAt: null,
          revokedAt: null,
        });
        await recordChange(tx, who, {
          tenantId: key.tenantId,
          product: key.product,
          action: 'api_key.created',
          crud: 'c',
          target: keyTarget(key),
          at,
        });
        return key;
      });
      return { apiKey, plaintext };
    } catch (err) {
      // 48 random bits of prefix rarely collide; when they do, draw a new key.
      const collided = err instanceof StoreConstraintError && err.constraint === 'api_keys_prefix_unique';
      if (!collided || attempt >= 3) throw err;
    }
  }
}

export async function listApiKeys(deps: Deps, tenantId: string, includeRevoked: boolean): Promise<ApiKey[]> {
  if (!(await deps.store.getTenant(tenantId))) throw notFound('tenant');
  return deps.store.listApiKeys(tenantId, { includeRevoked });
}

/** The tenant an API key belongs to (404 when there is no such key). */
export async function tenantOfApiKey(deps: Deps, id: string): Promise<string> {
  const key = await deps.store.getApiKey(id);
  if (!key) throw notFound('api key');
  return key.tenantId;
}

/** Revoking twice returns the same key and records nothing the second time. */
export async function revokeApiKey(deps: Deps, who: Principal, id: string): Promise<ApiKey> {
  return deps.store.transaction(async (tx) => {
    const key = await tx.getApiKey(id, { lock: true });
    if (!key) throw notFound('api key');
    if (key.revokedAt) return key;
    const at = now();
    const revoked = await tx.revokeApiKey(id, at);
    await recordChange(tx, who, {
      tenantId: key.tenantId,
      product: key.product,
      action: 'api_key.revoked',
      crud: 'd',
      target: keyTarget(revoked),
      at,
    });
    return revoked;
  });
}
