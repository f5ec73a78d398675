/**
 * The Postgres schema, as Drizzle code. `npm run db:generate` turns changes here into
 * SQL migrations in drizzle/, which are committed and are the only source of the schema.
 */
import { sql } from 'drizzle-orm';
import {
  boolean,
  check,
  index,
  integer,
  jsonb,
  pgEnum,
  pgTable,
  primaryKey,
  text,
  timestamp,
  uniqueIndex,
  uuid,
} from 'drizzle-orm/pg-core';

export const tenantStatus = pgEnum('tenant_status', ['trial', 'active', 'frozen']);
export const entitlementStatus = pgEnum('entitlement_status', ['trial', 'active', 'expired', 'revoked']);
export const entitlementSource = pgEnum('entitlement_source', ['trial', 'sales', 'manual']);
export const productRequestStatus = pgEnum('product_request_status', ['pending', 'fulfilled', 'rejected']);

/** Every time is stored at millisecond precision, UTC. */
const time = (name: string) => timestamp(name, { withTimezone: true, precision: 3, mode: 'date' });

export const tenants = pgTable(
  'tenants',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    slug: text('slug').notNull(),
    name: text('name').notNull(),
    status: tenantStatus('status').notNull().default('trial'),
    createdAt: time('created_at').notNull().defaultNow(),
    updatedAt: time('updated_at').notNull().defaultNow(),
  },
  (t) => [
    uniqueIndex('tenants_slug_unique').on(t.slug),
    check('tenants_slug_format', sql`${t.slug} ~ '^[a-z0-9](?:[a-z0-9-]{1,61}[a-z0-9])$'`),
  ],
);

export const products = pgTable(
  'products',
  {
    key: text('key').primaryKey(),
    name: text('name').notNull(),
    description: text('description').notNull().default(''),
    requestable: boolean('requestable').notNull().default(false),
    trialDays: integer('trial_days').notNull().default(0),
  },
  (t) => [
    check('products_key_format', sql`${t.key} ~ '^[a-z][a-z0-9-]{1,39}$'`),
    check('products_trial_days_nonnegative', sql`${t.trialDays} >= 0`),
  ],
);

export const entitlements = pgTable(
  'entitlements',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    tenantId: uuid('tenant_id')
      .notNull()
      .references(() => tenants.id, { onDelete: 'cascade' }),
    product: text('product')
      .notNull()
      .references(() => products.key),
    status: entitlementStatus('status').notNull(),
    source: entitlementSource('source').notNull(),
    startsAt: time('starts_at').notNull(),
    expiresAt: time('expires_at'),
    createdAt: time('created_at').notNull().defaultNow(),
    updatedAt: time('updated_at').notNull().defaultNow(),
  },
  (t) => [uniqueIndex('entitlements_tenant_product_unique').on(t.tenantId, t.product)],
);

export const productRequests = pgTable(
  'product_requests',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    tenantId: uuid('tenant_id')
      .notNull()
      .references(() => tenants.id, { onDelete: 'cascade' }),
    product: text('product')
      .notNull()
      .references(() => products.key),
    status: productRequestStatus('status').notNull().default('pending'),
    note: text('note'),
    createdAt: time('created_at').notNull().defaultNow(),
  },
  (t) => [index('product_requests_tenant_product').on(t.tenantId, t.product, t.status)],
);

export const apiKeys = pgTable(
  'api_keys',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    tenantId: uuid('tenant_id')
      .notNull()
      .references(() => tenants.id, { onDelete: 'cascade' }),
    name: text('name').notNull(),
    prefix: text('prefix').notNull(),
    hash: text('hash').notNull(),
    product: text('product').references(() => products.key),
    scopes: text('scopes').array().notNull().default(sql`'{}'::text[]`),
    createdAt: time('created_at').notNull().defaultNow(),
    expiresAt: time('expires_at'),
    lastUsedAt: time('last_used_at'),
    revokedAt: time('revoked_at'),
  },
  (t) => [
    uniqueIndex('api_keys_prefix_unique').on(t.prefix),
    index('api_keys_tenant_created').on(t.tenantId, t.createdAt.desc(), t.id.desc()),
  ],
);

/** Claimed Idempotency-Keys and the answers to replay (kept 24 h). */
export const idempotencyKeys = pgTable(
  'idempotency_keys',
  {
    scope: text('scope').notNull(),
    key: text('key').notNull(),
    requestHash: text('request_hash').notNull(),
    state: text('state').notNull(),
    response: jsonb('response'),
    createdAt: time('created_at').notNull(),
    updatedAt: time('updated_at').notNull(),
  },
  (t) => [
    primaryKey({ columns: [t.scope, t.key] }),
    index('idempotency_keys_created').on(t.createdAt),
    check('idempotency_keys_state', sql`${t.state} IN ('pending', 'done')`),
  ],
);

export const auditLog = pgTable(
  'audit_log',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    tenantId: uuid('tenant_id').references(() => tenants.id, { onDelete: 'set null' }),
    product: text('product'),
    action: text('action').notNull(),
    crud: text('crud'),
    actorId: text('actor_id').notNull(),
    actorName: text('actor_name'),
    actorType: text('actor_type').notNull(),
    targetId: text('target_id'),
    targetType: text('target_type'),
    targetName: text('target_name'),
    description: text('description'),
    sourceIp: text('source_ip'),
    isFailure: boolean('is_failure').notNull().default(false),
    fields: jsonb('fields').$type<Record<string, string>>().notNull().default(sql`'{}'::jsonb`),
    occurredAt: time('occurred_at').notNull(),
    receivedAt: time('received_at').notNull().defaultNow(),
  },
  (t) => [
    index('audit_log_keyset').on(t.occurredAt.desc(), t.id.desc()),
    index('audit_log_tenant_keyset').on(t.tenantId, t.occurredAt.desc(), t.id.desc()),
    check('audit_log_crud', sql`${t.crud} IS NULL OR ${t.crud} IN ('c', 'r', 'u', 'd')`),
    check('audit_log_actor_type', sql`${t.actorType} IN ('user', 'service', 'api_key', 'system')`),
  ],
);
