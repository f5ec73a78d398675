/**
 * Turns a request's `Authorization: Bearer <JWT>` into a principal — or, with
 * authentication off (dev only), into the `dev` platform-admin.
 */
import type { IncomingMessage } from 'node:http';
import { InvalidTokenError, IssuerUnavailableError, type OidcVerifier } from './oidc.js';
import { devPrincipal, principalFromClaims, type Principal } from './principal.js';

export type Authenticator = { mode: 'off' } | { mode: 'on'; verifier: OidcVerifier; audience: string };

export type AuthOutcome =
  | { ok: true; principal: Principal }
  | { ok: false; code: 'UNAUTHORIZED' | 'SERVICE_UNAVAILABLE'; message: string; challenge?: string };

const BEARER = /^Bearer[ ]+([A-Za-z0-9\-._~+/]+=*)[ ]*$/i;

/** `::ffff:10.0.0.1` → `10.0.0.1`; anything else as it is. */
const normaliseIp = (ip: string | undefined): string | null => {
  const trimmed = ip?.trim();
  if (!trimmed) return null;
  return trimmed.startsWith('::ffff:') && trimmed.includes('.') ? trimmed.slice(7) : trimmed;
};

/** The client address: the socket's, or the first X-Forwarded-For hop behind a trusted proxy. */
export function clientIp(req: IncomingMessage, trustProxy: boolean): string | null {
  if (trustProxy) {
    const forwarded = req.headers['x-forwarded-for'];
    const first = (Array.isArray(forwarded) ? forwarded[0] : forwarded)?.split(',')[0];
    if (first?.trim()) return normaliseIp(first);
  }
  return normaliseIp(req.socket.remoteAddress);
}

export async function authenticate(req: IncomingMessage, auth: Authenticator, trustProxy: boolean): Promise<AuthOutcome> {
  const sourceIp = clientIp(req, trustProxy);
  if (auth.mode === 'off') return { ok: true, principal: devPrincipal(sourceIp) };
  const header = req.headers.authorization;
  if (!header) return { ok: false, code: 'UNAUTHORIZED', message: 'a bearer token is required', challenge: 'Bearer' };
  const token = BEARER.exec(header)?.[1];
  if (!token) {
    return { ok: false, code: 'UNAUTHORIZED', message: 'the Authorization header must be "Bearer <token>"', challenge: 'Bearer error="invalid_request"' };
  }
  try {
    const claims = await auth.verifier.verify(token);
    return { ok: true, principal: principalFromClaims(claims, auth.audience, sourceIp) };
  } catch (err) {
    if (err instanceof InvalidTokenError) {
      return { ok: false, code: 'UNAUTHORIZED', message: err.message, challenge: 'Bearer error="invalid_token"' };
    }
    if (err instanceof IssuerUnavailableError) {
      return { ok: false, code: 'SERVICE_UNAVAILABLE', message: 'cannot verify tokens right now: the issuer is unavailable' };
    }
    return { ok: false, code: 'UNAUTHORIZED', message: 'token is invalid', challenge: 'Bearer error="invalid_token"' };
  }
}
