/**
 * The OpenAPI 3.1 document, generated from the app router's meta by trpc-to-openapi and
 * finished here: 201s where procedures create, the shared Error schema on every error
 * response, tag descriptions, and the two plain health routes.
 */
import { generateOpenApiDocument, type OpenAPIObject } from 'trpc-to-openapi';
import { z } from 'zod';
import { ErrorBody } from '../api/common.js';
import { appRouter } from '../routers/index.js';
import type { Meta } from '../trpc.js';

export const API_VERSION = '1.0.0';

const TAGS = [
  { name: 'tenants', description: 'Tenants (orgs) and their lifecycle: trial → active → frozen.' },
  { name: 'entitlements', description: 'Which products a tenant may use.' },
  { name: 'catalog', description: 'Requestable products, sales requests and self-serve trials.' },
  { name: 'api-keys', description: 'API keys for headless products, and their verification.' },
  { name: 'audit', description: 'The append-only audit log.' },
  { name: 'health', description: 'Liveness and readiness.' },
];

const Health = z.object({ status: z.literal('ok') });
const Ready = z.object({ status: z.literal('ready') });
const Unavailable = z.object({ status: z.literal('unavailable') });

const ERROR_REF = { $ref: '#/components/schemas/Error' };

/** Every /v1 operation may answer these (see the Authentication section of the README). */
const AUTH_RESPONSES = {
  401: { description: 'Missing or invalid bearer token (with `WWW-Authenticate: Bearer`)' },
  403: { description: 'The token is valid but does not grant this operation' },
  503: { description: 'The database or the token issuer is unavailable; retry shortly' },
};

type Operation = { responses: Record<string, { description: string; content?: Record<string, { schema: unknown }> }> };

export function buildOpenApiDocument(): OpenAPIObject {
  const doc = generateOpenApiDocument(appRouter, {
    title: 'tenant-registry',
    description:
      'Tenants, entitlements, the product catalog, API keys and the audit log of the platform. ' +
      'JSON in and out, snake_case fields; every error body is `{code, message, issues?}`.',
    version: API_VERSION,
    openApiVersion: '3.1.0',
    baseUrl: '/',
    tags: TAGS.map((t) => t.name),
    defs: { Error: ErrorBody },
    securitySchemes: {
      bearerAuth: {
        type: 'http',
        scheme: 'bearer',
        bearerFormat: 'JWT',
        description: 'An OIDC access token from the platform issuer (Keycloak).',
      },
    },
    paths: {
      '/healthz': {
        get: {
          operationId: 'healthz',
          tags: ['health'],
          summary: 'Liveness',
          responses: { 200: { description: 'The process is up', content: { 'application/json': { schema: Health } } } },
        },
      },
      '/readyz': {
        get: {
          operationId: 'readyz',
          tags: ['health'],
          summary: 'Readiness: the store answers within 2 s',
          responses: {
            200: { description: 'Ready', content: { 'application/json': { schema: Ready } } },
            503: { description: 'Not ready', content: { 'application/json': { schema: Unavailable } } },
          },
        },
      },
    },
  });
  doc.tags = TAGS;

  const created = new Set<string>();
  for (const proc of Object.values(appRouter._def.procedures)) {
    const meta = (proc as unknown as { _def: { meta?: Meta } })._def.meta;
    if (meta?.openapi && meta.successStatus === 201) created.add(`${meta.openapi.method.toLowerCase()} ${meta.openapi.path}`);
  }
  for (const [path, item] of Object.entries(doc.paths ?? {})) {
    for (const [method, op] of Object.entries(item as Record<string, Operation>)) {
      if (path === '/readyz') continue;
      if (created.has(`${method} ${path}`) && op.responses['200']) {
        op.responses = { 201: { ...op.responses['200'], description: 'Created' }, ...withoutKey(op.responses, '200') };
      }
      if (path.startsWith('/v1/')) {
        op.responses = { ...AUTH_RESPONSES, ...op.responses };
      }
      for (const [status, response] of Object.entries(op.responses)) {
        if (Number(status) >= 400) response.content = { 'application/json': { schema: ERROR_REF } };
      }
    }
  }
  // trpc-to-openapi registers one component per error status; the shared Error replaces them.
  const schemas = (doc.components?.schemas ?? {}) as Record<string, unknown>;
  for (const name of Object.keys(schemas)) if (name.startsWith('error.')) delete schemas[name];
  return doc;
}

const withoutKey = <T>(record: Record<string, T>, key: string) =>
  Object.fromEntries(Object.entries(record).filter(([k]) => k !== key));
