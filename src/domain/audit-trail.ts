/** The automatic audit events that state changes write in their own transaction. */
import { randomUUID } from 'node:crypto';
import type { AuditEvent, Crud, StoreTx } from '../db/store.js';
import type { Principal } from './deps.js';

export interface StateChange {
  tenantId: string;
  product: string | null;
  action: string;
  crud: Crud;
  target: { id: string; type: string; name: string | null };
  at: Date;
}

export function recordChange(tx: StoreTx, who: Principal, change: StateChange): Promise<AuditEvent> {
  return tx.insertAudit({
    id: randomUUID(),
    tenantId: change.tenantId,
    product: change.product,
    action: change.action,
    crud: change.crud,
    actor: who.actor,
    target: change.target,
    description: null,
    sourceIp: who.sourceIp,
    isFailure: false,
    fields: {},
    occurredAt: change.at,
    receivedAt: change.at,
  });
}
