/**
 * The package entry point for TypeScript callers (the portal): the typed client and the
 * wire types of every procedure. Runtime code here is the client only; the router is a type.
 */
import type { TRPCClientErrorLike } from '@trpc/client';
import type { inferRouterInputs, inferRouterOutputs } from '@trpc/server';
import type { AppRouter } from './routers/index.js';

export type { AppRouter };
export {
  createRegistryClient,
  type Provider,
  type RegistryClient,
  type RegistryClientOptions,
  type RegistryHeaders,
} from './client.js';
export { TRPCClientError, isTRPCClientError } from '@trpc/client';

/** What each procedure takes, e.g. `RouterInputs['tenants']['create']` (wire shapes, before parsing). */
export type RouterInputs = inferRouterInputs<AppRouter>;
/** What each procedure returns, e.g. `RouterOutputs['tenants']['get']`. */
export type RouterOutputs = inferRouterOutputs<AppRouter>;
/** The error a client call rejects with; `data` is `{ code, httpStatus, path, issues? }`. */
export type RegistryClientError = TRPCClientErrorLike<AppRouter>;

export type Tenant = RouterOutputs['tenants']['get'];
export type TenantStatus = Tenant['status'];
export type Entitlement = RouterOutputs['entitlements']['list']['items'][number];
export type Product = RouterOutputs['catalog']['list']['items'][number];
export type ProductRequest = RouterOutputs['catalog']['request'];
export type ApiKey = RouterOutputs['apiKeys']['list']['items'][number];
export type CreatedApiKey = RouterOutputs['apiKeys']['create'];
export type VerifyResult = RouterOutputs['apiKeys']['verify'];
export type AuditEvent = RouterOutputs['audit']['append'];
export type AuditPage = RouterOutputs['audit']['query'];
