/**
 * Verifying an API key, in API.md's order: MALFORMED → NOT_FOUND → REVOKED → EXPIRED →
 * TENANT_FROZEN → NOT_ENTITLED; the first check that fails gives the code.
 *
 * The facts about a key (key row, tenant, entitlements looked at) come from the verify
 * cache when it has them, else from the store after one argon2 comparison; the decision is
 * always made here, against the clock, so a cached answer is exactly a cold one.
 */
import { PRODUCT_KEY } from './formats.js';
import { isWellFormedKey, prefixOf } from '../keys/api-key-format.js';
import type { KeyFacts } from '../keys/verify-cache.js';
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
const MAX_REMEMBERED_PRODUCTS = 16;

/** `key` and `product` arrive unchecked: anything that is not a string is MALFORMED. */
export async function verifyApiKey(deps: Deps, input: { key?: unknown; product?: unknown }): Promise<VerifyResult> {
  const { key, product: asked } = input;
  if (typeof key !== 'string' || !isWellFormedKey(key)) return fail('MALFORMED');
  if (asked !== undefined && asked !== null && typeof asked !== 'string') return fail('MALFORMED');

  const cache = deps.verifyCache;
  const digest = cache.digest(key);
  const cached = cache.lookup(digest);
  const facts = cached.hit ? cached.facts : await cache.loadOnce(digest, () => loadFacts(deps, key, digest));
  if (!facts) return fail('NOT_FOUND');

  const at = now();
  if (facts.revokedAt) return fail('REVOKED');
  if (facts.expiresAt && facts.expiresAt <= at) return fail('EXPIRED');
  if (facts.tenantStatus === 'frozen') return fail('TENANT_FROZEN');
  const product = asked ?? facts.keyProduct;
  if (product !== null) {
    if (facts.keyProduct !== null && product !== facts.keyProduct) return fail('NOT_ENTITLED');
    // A string that is no product key names no product (and never reaches the store: a NUL
    // in it would make Postgres fail the query, and verify always answers 200).
    if (!PRODUCT_KEY.test(product)) return fail('NOT_ENTITLED');
    let entitlement = facts.entitlements.get(product);
    if (entitlement === undefined) {
      entitlement = await deps.store.getEntitlement(facts.tenantId, product);
      // A key's entry remembers a few products' entitlements, not every name a caller tries.
      if (facts.entitlements.size < MAX_REMEMBERED_PRODUCTS) facts.entitlements.set(product, entitlement);
    }
    if (!grantsAccess(entitlement, at)) return fail('NOT_ENTITLED');
  }
  deps.usage.note(facts.keyId, at);
  return {
    valid: true,
    keyId: facts.keyId,
    tenantId: facts.tenantId,
    tenantSlug: facts.tenantSlug,
    product,
    scopes: facts.scopes,
    expiresAt: facts.expiresAt,
  };
}

/**
 * The cold path: find the key by prefix, compare with argon2id, read its tenant. A plaintext
 * already proven to be key X skips the prefix lookup and argon2 (the hash never changes).
 */
async function loadFacts(deps: Deps, key: string, digest: string): Promise<KeyFacts | null> {
  const cache = deps.verifyCache;
  const epoch = cache.currentEpoch;
  const proven = cache.provenKey(digest);
  const stored = proven ? await deps.store.getApiKey(proven) : await deps.store.getApiKeyByPrefix(prefixOf(key));
  const matches = stored !== null && (stored.id === proven || (await deps.hasher.verify(key, stored.hash)));
  if (matches) cache.prove(digest, stored.id);
  const tenant = matches ? await deps.store.getTenant(stored.tenantId) : null;
  const facts: KeyFacts | null =
    stored && tenant
      ? {
          keyId: stored.id,
          tenantId: tenant.id,
          tenantSlug: tenant.slug,
          tenantStatus: tenant.status,
          keyProduct: stored.product,
          scopes: stored.scopes,
          expiresAt: stored.expiresAt,
          revokedAt: stored.revokedAt,
          entitlements: new Map(),
        }
      : null;
  cache.remember(digest, facts, epoch);
  return facts;
}
