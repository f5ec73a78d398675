/**
 * A real OIDC issuer stand-in for tests (Keycloak-shaped tokens): a node:http server on
 * 127.0.0.1 serving `/.well-known/openid-configuration` and the JWKS of keys made with jose,
 * that mints access tokens, rotates keys, counts fetches and can go down.
 *
 *   const issuer = await OidcIssuer.start();
 *   const server = await startServer('memory', { auth: issuer.authenticator() });
 *   const token = await issuer.tokenFor('tenant-admin', [tenantId]);
 */
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { SignJWT, exportJWK, exportSPKI, generateKeyPair, type CryptoKey, type JWK } from 'jose';
import type { Authenticator } from '../../src/auth/authenticate.js';
import { OidcVerifier } from '../../src/auth/oidc.js';
import type { Role } from '../../src/auth/principal.js';

export const DEFAULT_AUDIENCE = 'tenant-registry';

export type SigningAlg = 'RS256' | 'ES256';

export interface SigningKey {
  kid: string;
  alg: SigningAlg;
  privateKey: CryptoKey;
  publicKey: CryptoKey;
  publicJwk: JWK;
  /** The public key as SPKI PEM (what an HS256 key-confusion attack signs with). */
  publicPem: string;
}

export interface TokenOptions {
  /** Default: a random UUID. */
  sub?: string;
  /** Keycloak realm roles (`realm_access.roles`). */
  roles?: string[];
  /** Client roles of the audience (`resource_access[<audience>].roles`). */
  clientRoles?: string[];
  /** Any other `resource_access` entries, as Keycloak emits them: client → roles. */
  resourceAccess?: Record<string, string[]>;
  /** The `tenant_ids` claim (array of UUIDs). */
  tenantIds?: string[];
  /** The `tenant_id` claim (a single UUID string). */
  tenantId?: string;
  /** Default: `user-<first 8 of sub>`; `null` omits the claim. */
  preferredUsername?: string | null;
  /** Authorized party (the client that asked for the token); omitted unless given. */
  azp?: string;
  /** Default: the issuer's audience; `null` omits the claim. */
  aud?: string | string[] | null;
  /** Seconds since the epoch. Default: now + 5 minutes; `null` omits the claim. */
  exp?: number | null;
  /** Seconds since the epoch; omitted unless given. */
  nbf?: number;
  /** Default: now. */
  iat?: number;
  /** Default: the issuer's URL. */
  iss?: string;
  /** The header's `kid`. Default: the signing key's; `null` omits it. */
  kid?: string | null;
  /** Which key signs: `RS256` (the newest RSA key, default) or `ES256` (the newest EC key). */
  alg?: SigningAlg;
  /** Sign with this key (which need not be published) instead of a published one. */
  key?: SigningKey;
  /** Extra claims, merged last (they win). */
  claims?: Record<string, unknown>;
}

/** How the issuer answers while it is "down". */
export type Outage =
  /** Accept connections but never answer (the verifier must time out). */
  | 'hang'
  /** Answer 503 with an HTML page. */
  | 'error'
  /** Reset every connection. */
  | 'reset';

export type Which = 'discovery' | 'jwks' | 'both';

export const nowSeconds = () => Math.floor(Date.now() / 1000);

export async function makeSigningKey(alg: SigningAlg = 'RS256', kid: string = `${alg.toLowerCase()}-${randomUUID().slice(0, 8)}`): Promise<SigningKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const publicJwk = { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' };
  return { kid, alg, privateKey, publicKey, publicJwk, publicPem: await exportSPKI(publicKey) };
}

/** base64url of a JSON value (for hand-made tokens). */
export const b64url = (value: unknown) => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');

/** Decodes a compact JWS's payload (no verification). */
export const decodePayload = (token: string): Record<string, unknown> =>
  JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString('utf8')) as Record<string, unknown>;

export class OidcIssuer {
  /** The issuer identifier (`iss`), e.g. `http://127.0.0.1:41234/realms/platform`. */
  readonly url: string;
  readonly audience: string;
  /** Published keys, oldest first. */
  readonly keys: SigningKey[];
  /** How many times each document was fetched (successfully answered or not). */
  discoveryFetches = 0;
  jwksFetches = 0;
  private outage: { mode: Outage; which: Which } | null = null;
  private readonly sockets = new Set<Socket>();
  private readonly held = new Set<ServerResponse>();
  private closed = false;

  private constructor(
    private readonly server: Server,
    readonly origin: string,
    audience: string,
    keys: SigningKey[],
  ) {
    this.url = `${origin}/realms/platform`;
    this.audience = audience;
    this.keys = keys;
  }

  static async start(opts: { audience?: string } = {}): Promise<OidcIssuer> {
    const keys = [await makeSigningKey('RS256'), await makeSigningKey('ES256')];
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    const issuer = new OidcIssuer(server, `http://127.0.0.1:${port}`, opts.audience ?? DEFAULT_AUDIENCE, keys);
    server.on('request', (req: IncomingMessage, res: ServerResponse) => issuer.handle(req, res));
    server.on('connection', (socket: Socket) => {
      issuer.sockets.add(socket);
      socket.on('close', () => issuer.sockets.delete(socket));
    });
    return issuer;
  }

  get discoveryUrl(): string {
    return `${this.url}/.well-known/openid-configuration`;
  }

  get jwksUrl(): string {
    return `${this.url}/protocol/openid-connect/certs`;
  }

  /** A fresh verifier for this issuer (each has its own JWKS cache). */
  verifier(opts: { audience?: string; jwksCooldownMs?: number } = {}): OidcVerifier {
    return new OidcVerifier({ issuer: this.url, audience: opts.audience ?? this.audience, jwksCooldownMs: opts.jwksCooldownMs });
  }

  /** What `startServer(kind, { auth })` takes: authentication on, against this issuer. */
  authenticator(opts: { audience?: string; jwksCooldownMs?: number } = {}): Authenticator {
    return { mode: 'on', verifier: this.verifier(opts), audience: opts.audience ?? this.audience };
  }

  private handle(req: IncomingMessage, res: ServerResponse) {
    const path = new URL(req.url ?? '/', this.origin).pathname;
    const which: Which | null =
      path === new URL(this.discoveryUrl).pathname ? 'discovery' : path === new URL(this.jwksUrl).pathname ? 'jwks' : null;
    if (which === 'discovery') this.discoveryFetches++;
    if (which === 'jwks') this.jwksFetches++;
    if (which && this.outage && (this.outage.which === 'both' || this.outage.which === which)) {
      if (this.outage.mode === 'hang') {
        this.held.add(res);
        res.on('close', () => this.held.delete(res));
        return;
      }
      if (this.outage.mode === 'reset') {
        req.socket.destroy();
        return;
      }
      res.writeHead(503, { 'content-type': 'text/html' }).end('<html><body>Service Unavailable</body></html>');
      return;
    }
    if (which === 'discovery') {
      return this.json(res, {
        issuer: this.url,
        authorization_endpoint: `${this.url}/protocol/openid-connect/auth`,
        token_endpoint: `${this.url}/protocol/openid-connect/token`,
        jwks_uri: this.jwksUrl,
        id_token_signing_alg_values_supported: ['RS256', 'ES256'],
      });
    }
    if (which === 'jwks') return this.json(res, { keys: this.keys.map((k) => k.publicJwk) });
    res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":"not found"}');
  }

  private json(res: ServerResponse, body: unknown) {
    res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' }).end(JSON.stringify(body));
  }

  /** The newest published key of an algorithm. */
  key(alg: SigningAlg = 'RS256'): SigningKey {
    const key = [...this.keys].reverse().find((k) => k.alg === alg);
    if (!key) throw new Error(`no ${alg} key`);
    return key;
  }

  /** Publishes a new key (the old ones stay published) and makes it the signing key of its algorithm. */
  async rotate(alg: SigningAlg = 'RS256'): Promise<SigningKey> {
    const key = await makeSigningKey(alg);
    this.keys.push(key);
    return key;
  }

  /** Stops publishing a key (tokens it signed no longer verify once the JWKS is refetched). */
  retire(kid: string): void {
    const at = this.keys.findIndex((k) => k.kid === kid);
    if (at >= 0) this.keys.splice(at, 1);
  }

  /** A signed access token, Keycloak-shaped, with sensible defaults (see TokenOptions). */
  async token(opts: TokenOptions = {}): Promise<string> {
    const key = opts.key ?? this.key(opts.alg ?? 'RS256');
    const sub = opts.sub ?? randomUUID();
    const now = nowSeconds();
    const claims: Record<string, unknown> = {
      iss: opts.iss ?? this.url,
      sub,
      iat: opts.iat ?? now,
      typ: 'Bearer',
      scope: 'openid profile',
    };
    if (opts.exp !== null) claims.exp = opts.exp ?? now + 300;
    if (opts.nbf !== undefined) claims.nbf = opts.nbf;
    const aud = opts.aud === undefined ? this.audience : opts.aud;
    if (aud !== null) claims.aud = aud;
    if (opts.azp !== undefined) claims.azp = opts.azp;
    const username = opts.preferredUsername === undefined ? `user-${sub.slice(0, 8)}` : opts.preferredUsername;
    if (username !== null) claims.preferred_username = username;
    if (opts.roles) claims.realm_access = { roles: opts.roles };
    const resourceAccess: Record<string, { roles: string[] }> = {};
    for (const [client, roles] of Object.entries(opts.resourceAccess ?? {})) resourceAccess[client] = { roles };
    if (opts.clientRoles) resourceAccess[this.audience] = { roles: opts.clientRoles };
    if (Object.keys(resourceAccess).length > 0) claims.resource_access = resourceAccess;
    if (opts.tenantIds !== undefined) claims.tenant_ids = opts.tenantIds;
    if (opts.tenantId !== undefined) claims.tenant_id = opts.tenantId;
    Object.assign(claims, opts.claims);

    const header: { alg: string; typ: string; kid?: string } = { alg: key.alg, typ: 'JWT' };
    const kid = opts.kid === undefined ? key.kid : opts.kid;
    if (kid !== null) header.kid = kid;
    return new SignJWT(claims).setProtectedHeader(header).sign(key.privateKey);
  }

  /**
   * A token for one role of the access matrix. Tenant roles belong to `tenantIds`; the
   * service role is a Keycloak service account (`service-account-<client>`, azp = client).
   */
  tokenFor(role: Role, tenantIds: string[] = [], extra: TokenOptions = {}): Promise<string> {
    if (role === 'service') {
      return this.token({
        sub: randomUUID(),
        roles: ['service'],
        azp: 'billing-service',
        preferredUsername: 'service-account-billing-service',
        ...extra,
      });
    }
    return this.token({
      roles: [role],
      preferredUsername: role === 'platform-admin' ? 'platform-admin-alice' : `${role}-bob`,
      ...(role === 'platform-admin' ? {} : { tenantIds }),
      ...extra,
    });
  }

  /**
   * Takes the issuer down: `hang` (connections accepted, never answered), `error` (503 HTML)
   * or `reset` (connections destroyed), for the discovery document, the JWKS, or both.
   */
  goDown(mode: Outage = 'hang', which: Which = 'both'): void {
    this.outage = { mode, which };
  }

  /** Answers normally again (requests held by a `hang` outage are dropped). */
  comeUp(): void {
    this.outage = null;
    for (const res of this.held) res.destroy();
    this.held.clear();
  }

  /** Closes the server: connections are refused from now on. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.comeUp();
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
