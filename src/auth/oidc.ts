/**
 * Verifies OIDC access tokens from the issuer (Keycloak): discovery for the JWKS address,
 * a cached JWKS that refetches on an unknown `kid` (at most once per cooldown), asymmetric
 * algorithms only, `iss`, `exp`/`nbf` with 60 s leeway, and `aud` (or `azp`) = our audience.
 */
import { createRemoteJWKSet, errors, jwtVerify, type JWTPayload } from 'jose';

const ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'];
const LEEWAY_SECONDS = 60;
const FETCH_TIMEOUT_MS = 3000;
/** After a failed discovery, callers get 503 for this long before it is tried again. */
const DISCOVERY_RETRY_MS = 5000;

export class InvalidTokenError extends Error {
  override readonly name = 'InvalidTokenError';
}

/** The issuer cannot be reached, so no token can be checked right now (503). */
export class IssuerUnavailableError extends Error {
  override readonly name = 'IssuerUnavailableError';
}

export interface OidcOptions {
  issuer: string;
  audience: string;
  /** How often an unknown `kid` may trigger a JWKS refetch. */
  jwksCooldownMs?: number;
}

export class OidcVerifier {
  private jwks: ReturnType<typeof createRemoteJWKSet> | null = null;
  private discovering: Promise<ReturnType<typeof createRemoteJWKSet>> | null = null;
  private discoveryFailedAt = 0;

  constructor(private readonly opts: OidcOptions) {}

  async verify(token: string): Promise<JWTPayload> {
    const jwks = await this.keySet();
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, jwks, {
        issuer: this.opts.issuer,
        algorithms: ALGORITHMS,
        clockTolerance: LEEWAY_SECONDS,
        requiredClaims: ['sub', 'exp'],
      }));
    } catch (err) {
      if (err instanceof errors.JWKSTimeout || isFetchFailure(err)) throw new IssuerUnavailableError('the token issuer is unavailable');
      throw new InvalidTokenError(describe(err));
    }
    const aud = payload.aud === undefined ? [] : Array.isArray(payload.aud) ? payload.aud : [payload.aud];
    if (!aud.includes(this.opts.audience) && payload.azp !== this.opts.audience) {
      throw new InvalidTokenError('token is not meant for this service (aud/azp)');
    }
    return payload;
  }

  private async keySet() {
    if (this.jwks) return this.jwks;
    if (Date.now() - this.discoveryFailedAt < DISCOVERY_RETRY_MS) throw new IssuerUnavailableError('the token issuer is unavailable');
    this.discovering ??= this.discover().finally(() => (this.discovering = null));
    try {
      this.jwks = await this.discovering;
      return this.jwks;
    } catch (err) {
      this.discoveryFailedAt = Date.now();
      throw err;
    }
  }

  private async discover() {
    const url = `${this.opts.issuer.replace(/\/$/, '')}/.well-known/openid-configuration`;
    let doc: { issuer?: unknown; jwks_uri?: unknown };
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(FETCH_TIMEOUT_MS) });
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      doc = (await res.json()) as typeof doc;
    } catch (err) {
      throw new IssuerUnavailableError(`OIDC discovery failed: ${(err as Error).message}`);
    }
    if (typeof doc.jwks_uri !== 'string' || !URL.canParse(doc.jwks_uri)) {
      throw new IssuerUnavailableError('OIDC discovery document has no jwks_uri');
    }
    return createRemoteJWKSet(new URL(doc.jwks_uri), {
      timeoutDuration: FETCH_TIMEOUT_MS,
      cooldownDuration: this.opts.jwksCooldownMs ?? 30_000,
      cacheMaxAge: 10 * 60_000,
    });
  }
}

const isFetchFailure = (err: unknown) =>
  err instanceof TypeError || (err instanceof errors.JOSEError && /fetch|network|ECONNREFUSED/i.test(err.message));

function describe(err: unknown): string {
  if (err instanceof errors.JWTExpired) return 'token has expired';
  if (err instanceof errors.JWTClaimValidationFailed) return `token claim "${err.claim}" is not acceptable`;
  if (err instanceof errors.JOSEAlgNotAllowed) return 'token algorithm is not allowed';
  if (err instanceof errors.JWKSNoMatchingKey) return 'token is signed with an unknown key';
  if (err instanceof errors.JWSSignatureVerificationFailed) return 'token signature is invalid';
  return 'token is invalid';
}
