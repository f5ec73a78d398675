/** The append-only audit log: appends from products, keyset-paginated queries. */
import { randomUUID } from 'node:crypto';
import { decodeCursor, encodeCursor } from '../audit/audit-cursor.js';
import { StoreConstraintError, type AuditEvent, type AuditFilter, type Crud, type ActorType } from '../db/store.js';
import { now } from './clock.js';
import type { Deps, Principal } from './deps.js';
import { invalid, notFound } from './errors.js';

const MAX_FUTURE_MS = 5 * 60_000;

export interface AuditAppend {
  tenantId: string | null;
  product: string | null;
  action: string;
  crud: Crud | null;
  actor: { id: string; name: string | null; type: ActorType };
  target: { id: string; type: string; name: string | null } | null;
  description: string | null;
  sourceIp: string | null;
  isFailure: boolean;
  fields: Record<string, string>;
  occurredAt: Date | null;
}

export async function appendAudit(deps: Deps, who: Principal, input: AuditAppend): Promise<AuditEvent> {
  const receivedAt = now();
  if (input.occurredAt && input.occurredAt.getTime() > receivedAt.getTime() + MAX_FUTURE_MS) {
    throw invalid(['occurred_at'], 'occurred_at is more than 5 minutes in the future');
  }
  const event: AuditEvent = {
    ...input,
    id: randomUUID(),
    sourceIp: input.sourceIp ?? who.sourceIp,
    occurredAt: input.occurredAt ?? receivedAt,
    receivedAt,
  };
  try {
    // One statement: the foreign key is the check that the tenant exists.
    return await deps.store.insertAudit(event);
  } catch (err) {
    if (err instanceof StoreConstraintError && err.constraint === 'foreign_key') throw notFound('tenant');
    throw err;
  }
}

export interface AuditPage {
  items: AuditEvent[];
  nextCursor: string | null;
}

export async function queryAudit(deps: Deps, filter: AuditFilter, limit: number, cursor: string | null): Promise<AuditPage> {
  if (filter.since && filter.until && filter.since > filter.until) throw invalid(['since'], 'since is later than until');
  let after = null;
  if (cursor !== null) {
    const decoded = decodeCursor(cursor, filter);
    if (!decoded.ok) throw invalid(['cursor'], decoded.reason);
    after = decoded.position;
  }
  // One row more than the page tells whether another page exists, so the last page says null.
  const rows = await deps.store.queryAudit(filter, after, limit + 1);
  const items = rows.slice(0, limit);
  const last = items[items.length - 1];
  return { items, nextCursor: rows.length > limit && last ? encodeCursor(last, filter) : null };
}
