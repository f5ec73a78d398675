import type { ChangeFeed } from './change-feed.js';

/**
 * The storage port. Two adapters implement it — MemoryStore and PostgresStore — and both
 * are thin: they read and write rows and report constraint violations as StoreConstraintError.
 * Every business rule lives above them, in src/domain.
 */
export type TenantStatus = 'trial' | 'active' | 'frozen';
export type EntitlementStatus = 'trial' | 'active' | 'expired' | 'revoked';
export type EntitlementSource = 'trial' | 'sales' | 'manual';
export type ProductRequestStatus = 'pending' | 'fulfilled' | 'rejected';
export type ActorType = 'user' | 'service' | 'api_key' | 'system';
export type Crud = 'c' | 'r' | 'u' | 'd';

export interface Tenant {
  id: string;
  slug: string;
  name: string;
  status: TenantStatus;
  createdAt: Date;
  updatedAt: Date;
}

export interface Product {
  key: string;
  name: string;
  description: string;
  requestable: boolean;
  trialDays: number;
}

export interface Entitlement {
  id: string;
  tenantId: string;
  product: string;
  /** As stored; src/domain/entitlements.ts derives the reported status (expired trials). */
  status: EntitlementStatus;
  source: EntitlementSource;
  startsAt: Date;
  expiresAt: Date | null;
  createdAt: Date;
  updatedAt: Date;
}

export interface ProductRequest {
  id: string;
  tenantId: string;
  product: string;
  status: ProductRequestStatus;
  note: string | null;
  createdAt: Date;
}

export interface ApiKey {
  id: string;
  tenantId: string;
  name: string;
  prefix: string;
  /** `argon2id|<salt-b64>|<hash-b64>`; never leaves the service. */
  hash: string;
  product: string | null;
  scopes: string[];
  createdAt: Date;
  expiresAt: Date | null;
  lastUsedAt: Date | null;
  revokedAt: Date | null;
}

export interface Actor {
  id: string;
  name: string | null;
  type: ActorType;
}

export interface AuditTarget {
  id: string;
  type: string;
  name: string | null;
}

export interface AuditEvent {
  id: string;
  tenantId: string | null;
  product: string | null;
  action: string;
  crud: Crud | null;
  actor: Actor;
  target: AuditTarget | null;
  description: string | null;
  sourceIp: string | null;
  isFailure: boolean;
  fields: Record<string, string>;
  occurredAt: Date;
  receivedAt: Date;
}

export interface AuditFilter {
  tenantId?: string;
  product?: string;
  actorId?: string;
  action?: string;
  /** Inclusive. */
  since?: Date;
  /** Exclusive. */
  until?: Date;
}

/** A keyset position: pages continue strictly after (older than) it. */
export interface AuditPosition {
  occurredAt: Date;
  id: string;
}

/** A claimed Idempotency-Key (src/domain/idempotency.ts has the rules). */
export interface IdempotencyRecord {
  scope: string;
  key: string;
  requestHash: string;
  state: 'pending' | 'done';
  /** The answer to replay (JSON), once done. */
  response: unknown;
  createdAt: Date;
  updatedAt: Date;
}

/** Which constraint a write broke; the names are the Postgres constraint names. */
export type ConstraintName =
  | 'tenants_slug_unique'
  | 'tenants_slug_format'
  | 'entitlements_tenant_product_unique'
  | 'api_keys_prefix_unique'
  | 'foreign_key';

export class StoreConstraintError extends Error {
  override readonly name = 'StoreConstraintError';
  constructor(readonly constraint: ConstraintName) {
    super(`constraint violated: ${constraint}`);
  }
}

/** The store is unreachable or failed; maps to 503. */
export class StoreUnavailableError extends Error {
  override readonly name = 'StoreUnavailableError';
}

export interface StoreReader {
  /** `lock` takes a row lock for the rest of the transaction (SELECT … FOR UPDATE). */
  getTenant(id: string, opts?: { lock?: boolean }): Promise<Tenant | null>;
  getTenantBySlug(slug: string): Promise<Tenant | null>;
  getProduct(key: string): Promise<Product | null>;
  /** Ordered by key in byte order. */
  listProducts(opts: { requestableOnly: boolean }): Promise<Product[]>;
  /** Ordered by product key in byte order. */
  listEntitlements(tenantId: string): Promise<Entitlement[]>;
  getEntitlement(tenantId: string, product: string): Promise<Entitlement | null>;
  findProductRequest(tenantId: string, product: string, status: ProductRequestStatus): Promise<ProductRequest | null>;
  getApiKey(id: string, opts?: { lock?: boolean }): Promise<ApiKey | null>;
  getApiKeyByPrefix(prefix: string): Promise<ApiKey | null>;
  /** Newest first. */
  listApiKeys(tenantId: string, opts: { includeRevoked: boolean }): Promise<ApiKey[]>;
  /** Newest first by (occurredAt, id); strictly after `after` when given; at most `limit` rows. */
  queryAudit(filter: AuditFilter, after: AuditPosition | null, limit: number): Promise<AuditEvent[]>;
}

export interface StoreWriter {
  insertTenant(tenant: Tenant): Promise<Tenant>;
  updateTenantStatus(id: string, status: TenantStatus, at: Date): Promise<Tenant>;
  insertEntitlement(entitlement: Entitlement): Promise<Entitlement>;
  insertProductRequest(request: ProductRequest): Promise<ProductRequest>;
  insertApiKey(key: ApiKey): Promise<ApiKey>;
  revokeApiKey(id: string, at: Date): Promise<ApiKey>;
  insertAudit(event: AuditEvent): Promise<AuditEvent>;
}

export type StoreTx = StoreReader & StoreWriter;

export interface Store extends StoreReader {
  readonly kind: 'memory' | 'postgres';
  /** Committed changes that affect verify answers, from this and other instances. */
  readonly changes: ChangeFeed;
  /**
   * Inserts `record` unless (scope, key) is taken; a taken one created before `expiredBefore`,
   * or still pending since before `abandonedBefore`, is replaced. Returns the record that
   * holds the key when it is not ours (null when we claimed it).
   */
  claimIdempotencyKey(
    record: IdempotencyRecord,
    opts: { expiredBefore: Date; abandonedBefore: Date },
  ): Promise<IdempotencyRecord | null>;
  completeIdempotencyKey(scope: string, key: string, response: unknown, at: Date): Promise<void>;
  releaseIdempotencyKey(scope: string, key: string): Promise<void>;
  /** Runs `fn` atomically: every write in it lands, or none does. */
  transaction<T>(fn: (tx: StoreTx) => Promise<T>): Promise<T>;
  /**
   * One audit event on its own: a single statement, no transaction around it. A tenant id
   * that names no tenant fails it with StoreConstraintError('foreign_key').
   */
  insertAudit(event: AuditEvent): Promise<AuditEvent>;
  /** Records verify use times in one batch; never inside a request's transaction. */
  touchApiKeys(uses: ReadonlyArray<{ id: string; at: Date }>): Promise<void>;
  /** Resolves when the store answers; rejects otherwise. */
  ping(): Promise<void>;
  close(): Promise<void>;
}
