import type { Product } from './store.js';

/** The default catalog; drizzle/0001_seed_default_catalog.sql inserts the same rows. */
export const defaultCatalog: readonly Product[] = [
  { key: 'analytics', name: 'Analytics', description: 'Dashboards and reports over your product data.', requestable: true, trialDays: 14 },
  { key: 'automation', name: 'Automation', description: 'Workflows that run on events and schedules.', requestable: true, trialDays: 14 },
  { key: 'compliance', name: 'Compliance', description: 'Retention policies, exports and evidence for audits.', requestable: true, trialDays: 14 },
  { key: 'enterprise-sso', name: 'Enterprise SSO', description: 'SAML and OIDC single sign-on (sales only).', requestable: true, trialDays: 0 },
  { key: 'internal-tools', name: 'Internal tools', description: 'Tools for the platform team.', requestable: false, trialDays: 0 },
];
