/**
 * The typed tRPC client of the registry, for the portal (and any TypeScript caller):
 *
 *   const registry = createRegistryClient({ url: 'https://registry.internal', token: getAccessToken });
 *   const tenant = await registry.tenants.create.mutate({ slug: 'acme', name: 'Acme' });
 *
 * Inputs and outputs are the wire shapes (snake_case, times as RFC 3339 strings), exactly
 * as over REST. Failures reject with a `TRPCClientError` whose `data` is
 * `{ code, httpStatus, path, issues? }` (`issues` on validation errors, never a stack).
 *
 * Only types come from the server code: importing this module loads `@trpc/client` alone.
 */
import { createTRPCClient, httpBatchLink, type TRPCClient } from '@trpc/client';
import type { AppRouter } from './routers/index.js';

/** Plain header name → value pairs. */
export type RegistryHeaders = Record<string, string>;

/** A value, or a (sync or async) function that produces it for each request. */
export type Provider<T> = T | (() => T | Promise<T>);

export interface RegistryClientOptions {
  /** The service's base URL, e.g. `https://registry.internal` (the client calls `${url}/trpc`). */
  url: string;
  /** Extra headers for every request: an object, or a function called per request. */
  headers?: Provider<RegistryHeaders>;
  /**
   * A bearer token (an OIDC access token), or a function returning the current one; sent as
   * `Authorization: Bearer <token>`, over any `Authorization` in `headers`. An empty
   * token sends no header.
   */
  token?: Provider<string | null | undefined>;
  /** The `fetch` to use, if not the global one (e.g. for a custom agent or tests). */
  fetch?: typeof fetch;
}

export type RegistryClient = TRPCClient<AppRouter>;

const resolve = async <T>(provider: Provider<T>): Promise<T> =>
  typeof provider === 'function' ? await (provider as () => T | Promise<T>)() : provider;

/** The headers of one request: `headers`, then `Authorization` from `token` when there is one. */
export async function requestHeaders(opts: Pick<RegistryClientOptions, 'headers' | 'token'>): Promise<RegistryHeaders> {
  const headers: RegistryHeaders = { ...(opts.headers === undefined ? {} : await resolve(opts.headers)) };
  if (opts.token === undefined) return headers;
  const token = await resolve(opts.token);
  if (!token) return headers;
  for (const name of Object.keys(headers)) if (name.toLowerCase() === 'authorization') delete headers[name];
  headers.authorization = `Bearer ${token}`;
  return headers;
}

export function createRegistryClient(opts: RegistryClientOptions): RegistryClient {
  const base = opts.url.replace(/\/+$/, '');
  return createTRPCClient<AppRouter>({
    links: [
      httpBatchLink({
        url: `${base}/trpc`,
        headers: () => requestHeaders(opts),
        ...(opts.fetch ? { fetch: opts.fetch } : {}),
      }),
    ],
  });
}
