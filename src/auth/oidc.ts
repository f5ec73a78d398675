/**
 * Verifies OIDC access tokens from the issuer (Keycloak): discovery for the JWKS address,
 * a cached JWKS that refetches on an unknown `kid` (at most once per cooldown), asymmetric
 * algorithms only, `iss`, `exp`/`nbf` with 60 s leeway, and `aud` (or `azp`) = our audience.
 */
import { createRemoteJWKSet, errors, jwtVerify, type JWTPayload } from 'jose';
import { VerifiedTokens } from './token-cache.js';

const ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'];
const LEEWAY_SECONDS = 60;
const FETCH_TIMEOUT_MS = 3000;
const DEFAULT_JWKS_COOLDOWN_MS = 30_000;
/** After a failed discovery, callers get 503 for this long before it is tried again. */
const DISCOVERY_RETRY_MS = 5000;

type RemoteKeySet = ReturnType<typeof createRemoteJWKSet>;

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
  private jwks: RemoteKeySet | null = null;
  private discovering: Promise<RemoteKeySet> | null = null;
  private discoveryFailedAt = 0;
  /** The last JWKS refetch an unknown `kid` caused. */
  private kidRefetch: { at: number; done: Promise<void> } | null = null;

  private readonly verified = new VerifiedTokens();

  constructor(private readonly opts: OidcOptions) {}

  async verify(token: string): Promise<JWTPayload> {
    const known = this.verified.get(token);
    if (known) return known;
    const jwks = await this.keySet();
    let payload: JWTPayload;
    try {
      payload = await this.checkSignatureAndClaims(token, jwks);
    } catch (err) {
      if (err instanceof errors.JWKSTimeout || isFetchFailure(err)) throw new IssuerUnavailableError('the token issuer is unavailable');
      throw new InvalidTokenError(describe(err));
    }
    const aud = payload.aud === undefined ? [] : Array.isArray(payload.aud) ? payload.aud : [payload.aud];
    if (!aud.includes(this.opts.audience) && payload.azp !== this.opts.audience) {
      throw new InvalidTokenError('token is not meant for this service (aud/azp)');
    }
    this.verified.set(token, payload);
    return payload;
  }

  private async checkSignatureAndClaims(token: string, jwks: RemoteKeySet): Promise<JWTPayload> {
    const options = { issuer: this.opts.issuer, algorithms: ALGORITHMS, clockTolerance: LEEWAY_SECONDS, requiredClaims: ['sub', 'exp'] };
    try {
      return (await jwtVerify(token, jwks, options)).payload;
    } catch (err) {
      if (!(err instanceof errors.JWKSNoMatchingKey)) throw err;
      await this.refetchForUnknownKid(jwks);
      return (await jwtVerify(token, jwks, options)).payload;
    }
  }

  /**
   * An unknown `kid` refetches the JWKS at most once per cooldown; calls that arrive while
   * that refetch runs wait for it. (jose's own cooldown counts from any fetch, the first
   * included, so it would miss a key published within 30 s of start-up or of a cache
   * refresh; it is disabled in favour of this one.)
   */
  private async refetchForUnknownKid(jwks: RemoteKeySet): Promise<void> {
    const cooldown = this.opts.jwksCooldownMs ?? DEFAULT_JWKS_COOLDOWN_MS;
    if (!this.kidRefetch || Date.now() - this.kidRefetch.at >= cooldown) {
      this.kidRefetch = { at: Date.now(), done: jwks.reload() };
    }
    await this.kidRefetch.done;
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
    // OIDC Discovery §4.3: the document must name the issuer it was fetched for.
    const sameIssuer = (a: string, b: string) => a.replace(/\/$/, '') === b.replace(/\/$/, '');
    if (typeof doc.issuer !== 'string' || !sameIssuer(doc.issuer, this.opts.issuer)) {
      throw new IssuerUnavailableError(`OIDC discovery document names another issuer (${String(doc.issuer)})`);
    }
    return createRemoteJWKSet(new URL(doc.jwks_uri), {
      timeoutDuration: FETCH_TIMEOUT_MS,
      // Unknown kids are refetched by refetchForUnknownKid, not by jose.
      cooldownDuration: Number.MAX_SAFE_INTEGER,
      cacheMaxAge: 10 * 60_000,
    });
  }
}

/** The JWKS could not be fetched (network, timeout, a non-200 answer): the issuer is unavailable. */
const isFetchFailure = (err: unknown) =>
  err instanceof TypeError ||
  (err instanceof errors.JOSEError && /fetch|network|ECONNREFUSED|Expected 200 OK/i.test(err.message));

function describe(err: unknown): string {
  if (err instanceof errors.JWTExpired) return 'token has expired';
  if (err instanceof errors.JWTClaimValidationFailed) return `token claim "${err.claim}" is not acceptable`;
  if (err instanceof errors.JOSEAlgNotAllowed) return 'token algorithm is not allowed';
  if (err instanceof errors.JWKSNoMatchingKey) return 'token is signed with an unknown key';
  if (err instanceof errors.JWSSignatureVerificationFailed) return 'token signature is invalid';
  return 'token is invalid';
}
