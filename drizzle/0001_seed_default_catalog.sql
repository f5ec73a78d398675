-- The default catalog (API.md). The memory store seeds the same rows from src/db/default-catalog.ts.
INSERT INTO "products" ("key", "name", "description", "requestable", "trial_days") VALUES
  ('analytics', 'Analytics', 'Dashboards and reports over your product data.', true, 14),
  ('automation', 'Automation', 'Workflows that run on events and schedules.', true, 14),
  ('compliance', 'Compliance', 'Retention policies, exports and evidence for audits.', true, 14),
  ('enterprise-sso', 'Enterprise SSO', 'SAML and OIDC single sign-on (sales only).', true, 0),
  ('internal-tools', 'Internal tools', 'Tools for the platform team.', false, 0)
ON CONFLICT ("key") DO NOTHING;
