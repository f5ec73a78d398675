/** Builds the tRPC context of a request: the shared dependencies and who is calling. */
import type { IncomingMessage } from 'node:http';
import { authenticate, type Authenticator, type AuthOutcome } from './auth/authenticate.js';
import type { Deps } from './domain/deps.js';
import { recordOf } from './observability/http.js';
import type { Context } from './trpc.js';

export interface ContextOptions {
  auth: Authenticator;
  /** Take the client address from the first X-Forwarded-For hop. */
  trustProxy: boolean;
}

export type CreateContext = (req: IncomingMessage, transport: Context['transport'], known?: AuthOutcome) => Promise<Context>;

const headerValue = (req: IncomingMessage, name: string): string | null => {
  const value = req.headers[name];
  return (Array.isArray(value) ? value.join(', ') : value) ?? null;
};

export function contextFactory(deps: Deps, opts: ContextOptions): CreateContext {
  return async (req, transport, known) => {
    const auth = known ?? (await authenticate(req, opts.auth, opts.trustProxy));
    // The request line names the caller.
    const request = recordOf(req);
    if (request && auth.ok) request.actor = auth.principal.actor;
    return { deps, transport, auth, idempotencyKey: headerValue(req, 'idempotency-key'), request };
  };
}
