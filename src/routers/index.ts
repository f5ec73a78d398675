import { router } from '../trpc.js';
import { apiKeysRouter } from './api-keys.js';
import { auditRouter } from './audit.js';
import { catalogRouter } from './catalog.js';
import { entitlementsRouter } from './entitlements.js';
import { tenantsRouter } from './tenants.js';

export const appRouter = router({
  tenants: tenantsRouter,
  entitlements: entitlementsRouter,
  catalog: catalogRouter,
  apiKeys: apiKeysRouter,
  audit: auditRouter,
});

export type AppRouter = typeof appRouter;
