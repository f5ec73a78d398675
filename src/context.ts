/** Builds the tRPC context of a request: the shared dependencies and who is calling. */
import type { IncomingMessage } from 'node:http';
import type { Deps, Principal } from './domain/deps.js';
import type { Context } from './trpc.js';

export interface ContextOptions {
  /** Take the client address from the first X-Forwarded-For hop. */
  trustProxy: boolean;
}

/** `::ffff:10.0.0.1` → `10.0.0.1`; anything else as it is. */
const normaliseIp = (ip: string | undefined): string | null => {
  if (!ip) return null;
  const trimmed = ip.trim();
  return trimmed.startsWith('::ffff:') && trimmed.includes('.') ? trimmed.slice(7) : trimmed || null;
};

export function clientIp(req: IncomingMessage, opts: ContextOptions): string | null {
  if (opts.trustProxy) {
    const forwarded = req.headers['x-forwarded-for'];
    const first = (Array.isArray(forwarded) ? forwarded[0] : forwarded)?.split(',')[0];
    if (first?.trim()) return normaliseIp(first);
  }
  return normaliseIp(req.socket.remoteAddress);
}

/** With authentication off (dev), every caller is this principal, with every right. */
export const DEV_ACTOR = { id: 'dev', name: 'dev', type: 'user' } as const;

export function contextFactory(deps: Deps, opts: ContextOptions) {
  return (req: IncomingMessage, transport: Context['transport']): Context => {
    const principal: Principal = { actor: { ...DEV_ACTOR }, sourceIp: clientIp(req, opts) };
    return { deps, principal, transport };
  };
}
