/**
 * The SQL the Postgres store sends (as Drizzle renders it; see src/db/postgres-store.ts), for
 * the direct-`pg` baselines, and the audit seed.
 */
import type pg from 'pg';

const TENANT_COLS = '"id", "slug", "name", "status", "created_at", "updated_at"';
const AUDIT_COLS =
  '"id", "tenant_id", "product", "action", "crud", "actor_id", "actor_name", "actor_type", "target_id", "target_type", "target_name", "description", "source_ip", "is_failure", "fields", "occurred_at", "received_at"';

export const SELECT_TENANT = `select ${TENANT_COLS} from "tenants" where "tenants"."id" = $1`;
export const INSERT_TENANT = `insert into "tenants" (${TENANT_COLS}) values ($1, $2, $3, $4, $5, $6) returning ${TENANT_COLS}`;
export const INSERT_AUDIT = `insert into "audit_log" (${AUDIT_COLS}) values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17) returning ${AUDIT_COLS}`;

export interface AuditQueryFilter {
  tenantId?: string;
  action?: string;
  since?: Date;
}

export interface Position {
  occurredAt: Date;
  id: string;
}

/** queryAudit's statement (limit is the page size + 1, as the domain asks for). */
export function auditQuery(f: AuditQueryFilter, after: Position | null, limit: number): { text: string; values: unknown[] } {
  const where: string[] = [];
  const values: unknown[] = [];
  const param = (v: unknown) => `$${values.push(v)}`;
  if (f.tenantId !== undefined) where.push(`"audit_log"."tenant_id" = ${param(f.tenantId)}`);
  if (f.action !== undefined) where.push(`"audit_log"."action" = ${param(f.action)}`);
  if (f.since) where.push(`"audit_log"."occurred_at" >= ${param(f.since.toISOString())}`);
  if (after) {
    where.push(`("audit_log"."occurred_at", "audit_log"."id") < (${param(after.occurredAt.toISOString())}::timestamptz, ${param(after.id)}::uuid)`);
  }
  const whereSql = where.length === 0 ? '' : where.length === 1 ? ` where ${where[0]}` : ` where (${where.join(' and ')})`;
  const text = `select ${AUDIT_COLS} from "audit_log"${whereSql} order by "audit_log"."occurred_at" desc nulls last, "audit_log"."id" desc nulls last limit ${param(limit)}`;
  return { text, values };
}

/** The position (occurred_at, id) of the event at `offset` in a filter's keyset order. */
export async function positionAt(pool: pg.Pool, f: AuditQueryFilter, offset: number): Promise<Position> {
  const q = auditQuery(f, null, 1);
  const text = q.text.replace(/limit \$\d+$/, `offset ${Math.trunc(offset)} limit 1`);
  const { rows } = await pool.query<{ id: string; occurred_at: Date }>(text, q.values.slice(0, -1));
  const row = rows[0];
  if (!row) throw new Error(`no event at offset ${offset}`);
  return { occurredAt: row.occurred_at, id: row.id };
}

export const SEED_ACTIONS = [
  'report.exported', 'user.login', 'user.logout', 'settings.changed', 'invoice.paid', 'dashboard.viewed', 'export.requested', 'member.invited',
];

/**
 * 1,000 tenants, then `events` audit events in one INSERT … SELECT over generate_series:
 * occurred_at evenly spread over the 365 days before yesterday, 8 actions, tenants skewed
 * like customers are (tenant k of 0…999 gets √((k+1)/1000) − √(k/1000) of the events:
 * seed-0001 about 3.2 %, the median tenant about 0.07 %).
 */
export async function seedAudit(pool: pg.Pool, events: number): Promise<{ start: Date; end: Date }> {
  const end = new Date(Date.now() - 24 * 3600_000);
  const start = new Date(end.getTime() - 365 * 24 * 3600_000);
  const stepMs = (end.getTime() - start.getTime()) / events;
  const client = await pool.connect();
  try {
    await client.query('SELECT setseed(0.4242)');
    await client.query(
      `INSERT INTO tenants (id, slug, name, status, created_at, updated_at)
       SELECT gen_random_uuid(), 'seed-' || lpad(g::text, 4, '0'), 'Seed tenant ' || g, 'active', $1::timestamptz, $1::timestamptz
         FROM generate_series(1, 1000) AS g`,
      [start.toISOString()],
    );
    await client.query(
      `INSERT INTO audit_log (id, tenant_id, product, action, crud, actor_id, actor_name, actor_type, target_id, target_type,
                              target_name, description, source_ip, is_failure, fields, occurred_at, received_at)
       SELECT gen_random_uuid(),
              t.ids[1 + floor(1000 * random() ^ 2)::int],
              (ARRAY['analytics', 'automation', 'compliance', NULL])[1 + floor(random() * 4)::int],
              ($4::text[])[1 + floor(random() * 8)::int],
              (ARRAY['c', 'r', 'u', 'd'])[1 + floor(random() * 4)::int],
              'user-' || floor(random() * 5000)::int,
              'User ' || (g % 5000),
              CASE WHEN random() < 0.2 THEN 'service' ELSE 'user' END,
              'obj-' || (g % 100000),
              'report',
              NULL,
              'seeded event ' || g,
              '10.' || (g % 250) || '.' || (g % 199) || '.' || (g % 97),
              random() < 0.02,
              jsonb_build_object('seq', g::text),
              ts.at,
              ts.at + interval '20 milliseconds'
         FROM (SELECT array_agg(id ORDER BY slug) AS ids FROM tenants WHERE slug LIKE 'seed-%') AS t,
              generate_series(1, $1::int) AS g,
              LATERAL (SELECT $2::timestamptz + (g * $3::float8) * interval '1 millisecond' AS at) AS ts`,
      [events, start.toISOString(), stepMs, SEED_ACTIONS],
    );
    // Now rather than in the middle of a measurement: autovacuum would come for 1M inserts.
    await client.query('VACUUM (ANALYZE) audit_log');
    await client.query('ANALYZE tenants');
  } finally {
    client.release();
  }
  return { start, end };
}
