/**
 * The OpenAPI contract gate: the committed openapi.yaml is what the routers generate, it is
 * a valid OpenAPI 3.1 document, it says what API.md says (201 on creation, the shared Error
 * schema, every endpoint), and every operation it documents is really served.
 */
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import SwaggerParser from '@apidevtools/swagger-parser';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { buildOpenApiDocument } from '../src/rest/openapi-document.js';
import { renderOpenApiYaml } from '../src/rest/openapi-yaml.js';
import { eachStore, randomSlug } from './harness/each-store.js';

const COMMITTED = readFileSync(new URL('../openapi.yaml', import.meta.url), 'utf8');
const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'] as const;

interface Parameter {
  in: string;
  name: string;
  required?: boolean;
  schema?: { format?: string; type?: string };
}
interface Response {
  description?: string;
  content?: Record<string, { schema?: Record<string, unknown> }>;
}
interface Operation {
  operationId?: string;
  parameters?: Parameter[];
  requestBody?: { content?: Record<string, unknown> };
  responses: Record<string, Response>;
}
type Doc = { openapi: string; paths: Record<string, Partial<Record<(typeof METHODS)[number], Operation>>>; components?: any };

const doc = parse(COMMITTED) as Doc;

/** Every (path, method, operation) of a document. */
const operations = (d: Doc) =>
  Object.entries(d.paths).flatMap(([path, item]) =>
    METHODS.flatMap((method) => (item[method] ? [{ path, method, op: item[method]! }] : [])),
  );

/** API.md's endpoint table. */
const API_MD_ENDPOINTS: [string, string][] = [
  ['get', '/healthz'],
  ['get', '/readyz'],
  ['post', '/v1/tenants'],
  ['get', '/v1/tenants/{id}'],
  ['get', '/v1/tenants/by-slug/{slug}'],
  ['post', '/v1/tenants/{id}/activate'],
  ['post', '/v1/tenants/{id}/cancel'],
  ['get', '/v1/entitlements'],
  ['get', '/v1/catalog'],
  ['post', '/v1/catalog/request'],
  ['post', '/v1/catalog/trial-request'],
  ['post', '/v1/api-keys'],
  ['get', '/v1/api-keys'],
  ['delete', '/v1/api-keys/{id}'],
  ['post', '/v1/internal/api-keys/verify'],
  ['post', '/v1/audit'],
  ['get', '/v1/audit'],
];

const CREATIONS: [string, string][] = [
  ['post', '/v1/tenants'],
  ['post', '/v1/catalog/request'],
  ['post', '/v1/catalog/trial-request'],
  ['post', '/v1/api-keys'],
  ['post', '/v1/audit'],
];

describe('openapi.yaml', () => {
  it('is what the routers generate now (run `npm run openapi` and commit the result if not)', () => {
    const generated = renderOpenApiYaml();
    expect(COMMITTED === generated, 'openapi.yaml is out of date: run `npm run openapi` and commit the result').toBe(true);
  });

  it('is a valid OpenAPI 3.1 document (swagger-parser, against the OAS 3.1 schema; $refs resolve)', async () => {
    await expect(SwaggerParser.validate(structuredClone(doc) as never)).resolves.toBeTruthy();
    // the generator's own object, not only its YAML rendering
    await expect(SwaggerParser.validate(structuredClone(buildOpenApiDocument()) as never)).resolves.toBeTruthy();
  });

  it('the validator really checks 3.1 documents (it rejects broken ones)', async () => {
    const noDescription = structuredClone(doc);
    delete noDescription.paths['/v1/tenants']!.post!.responses['201']!.description;
    await expect(SwaggerParser.validate(noDescription as never)).rejects.toThrow();

    const danglingRef = structuredClone(doc);
    danglingRef.paths['/v1/tenants']!.post!.responses['201']!.content!['application/json']!.schema = {
      $ref: '#/components/schemas/NoSuchSchema',
    };
    await expect(SwaggerParser.validate(danglingRef as never)).rejects.toThrow();

    const badParameter = structuredClone(doc);
    badParameter.paths['/v1/tenants/{id}']!.get!.parameters![0]!.in = 'body';
    await expect(SwaggerParser.validate(badParameter as never)).rejects.toThrow();
  });

  it('says openapi 3.1.0', () => {
    expect(doc.openapi).toBe('3.1.0');
    expect(COMMITTED).toMatch(/^openapi: 3\.1\.0$/m);
  });

  it("documents every endpoint of API.md's table, with its method", () => {
    for (const [method, path] of API_MD_ENDPOINTS) {
      expect(doc.paths[path]?.[method as 'get'], `${method.toUpperCase()} ${path}`).toBeDefined();
    }
  });

  it('documents only endpoints of API.md (no stray operation)', () => {
    const documented = operations(doc).map(({ method, path }) => `${method} ${path}`);
    expect(documented.sort()).toEqual(API_MD_ENDPOINTS.map(([m, p]) => `${m} ${p}`).sort());
  });

  it('documents 201 (and not 200) for every creation, 200 for everything else that succeeds', () => {
    for (const [method, path] of CREATIONS) {
      const op = doc.paths[path]![method as 'post']!;
      expect(op.responses['201'], `${method} ${path} 201`).toBeDefined();
      expect(op.responses['200'], `${method} ${path} 200`).toBeUndefined();
      expect(op.responses['201']!.content?.['application/json']?.schema, `${method} ${path} schema`).toBeDefined();
    }
    const created = new Set(CREATIONS.map(([m, p]) => `${m} ${p}`));
    for (const { path, method, op } of operations(doc)) {
      if (created.has(`${method} ${path}`)) continue;
      expect(op.responses['200'], `${method} ${path} 200`).toBeDefined();
      expect(op.responses['201'], `${method} ${path} 201`).toBeUndefined();
    }
  });

  it('references #/components/schemas/Error from every error response (but /readyz 503)', () => {
    expect(doc.components?.schemas?.Error).toBeDefined();
    expect(Object.keys(doc.components.schemas).filter((n) => n.startsWith('error.'))).toEqual([]);
    let seen = 0;
    for (const { path, method, op } of operations(doc)) {
      for (const [status, response] of Object.entries(op.responses)) {
        if (Number(status) < 400) continue;
        if (path === '/readyz' && status === '503') continue;
        seen++;
        expect(response.content, `${method} ${path} ${status}`).toEqual({
          'application/json': { schema: { $ref: '#/components/schemas/Error' } },
        });
      }
    }
    expect(seen).toBeGreaterThan(30);
  });

  it('the Error schema is API.md’s {code, message, issues?}', () => {
    const error = doc.components.schemas.Error;
    expect(Object.keys(error.properties).sort()).toEqual(['code', 'issues', 'message']);
    expect([...error.required].sort()).toEqual(['code', 'message']);
    expect([...error.properties.code.enum].sort()).toEqual(
      [
        'BAD_REQUEST',
        'UNAUTHORIZED',
        'FORBIDDEN',
        'NOT_FOUND',
        'METHOD_NOT_SUPPORTED',
        'CONFLICT',
        'PAYLOAD_TOO_LARGE',
        'UNSUPPORTED_MEDIA_TYPE',
        'TOO_MANY_REQUESTS',
        'INTERNAL_SERVER_ERROR',
        'SERVICE_UNAVAILABLE',
      ].sort(),
    );
  });

  // swagger-parser validates 3.x documents against the OAS JSON schema only; these are rules
  // of the specification text that no schema expresses.
  it('follows the rules the OAS schema cannot check: unique operationIds, declared path parameters', () => {
    const ids = operations(doc).map(({ op }) => op.operationId);
    expect(ids.every((id) => typeof id === 'string' && id.length > 0)).toBe(true);
    expect(new Set(ids).size).toBe(ids.length);
    for (const { path, method, op } of operations(doc)) {
      const templated = [...path.matchAll(/\{([^}]+)\}/g)].map((m) => m[1]).sort();
      const declared = (op.parameters ?? []).filter((p) => p.in === 'path');
      expect(declared.map((p) => p.name).sort(), `${method} ${path}`).toEqual(templated);
      for (const p of declared) expect(p.required, `${method} ${path} {${p.name}}`).toBe(true);
      const keys = (op.parameters ?? []).map((p) => `${p.in}:${p.name}`);
      expect(new Set(keys).size, `${method} ${path} duplicate parameters`).toBe(keys.length);
      if (method === 'get' || method === 'delete') expect(op.requestBody, `${method} ${path} body`).toBeUndefined();
      for (const [status, response] of Object.entries(op.responses)) {
        expect(typeof response.description, `${method} ${path} ${status}`).toBe('string');
        if (Number(status) < 300) expect(response.content?.['application/json']?.schema, `${method} ${path} ${status}`).toBeDefined();
      }
    }
  });

  // Nor does the OAS 3.1 schema look inside Schema Objects (JSON Schema 2020-12): a light check.
  it('has well-formed Schema Objects: known types, resolvable refs, required ⊆ properties', () => {
    const TYPES = new Set(['string', 'number', 'integer', 'boolean', 'object', 'array', 'null']);
    const schemas = doc.components?.schemas ?? {};
    let checked = 0;
    const visit = (node: unknown, where: string): void => {
      if (Array.isArray(node)) return node.forEach((n, i) => visit(n, `${where}/${i}`));
      if (node === null || typeof node !== 'object') return;
      const o = node as Record<string, unknown>;
      if ('type' in o && (typeof o.type === 'string' || Array.isArray(o.type))) {
        checked++;
        for (const t of [o.type].flat()) expect(TYPES.has(t as string), `${where}: type ${String(t)}`).toBe(true);
        if (o.type === 'object' && Array.isArray(o.required)) {
          for (const r of o.required) expect(Object.keys((o.properties as object) ?? {}), `${where}: required ${r}`).toContain(r);
        }
        if (o.type === 'array') expect(o.items, `${where}: items`).toBeDefined();
        if (typeof o.pattern === 'string') expect(() => new RegExp(o.pattern as string, 'u'), `${where}: pattern`).not.toThrow();
      }
      if (typeof o.$ref === 'string') {
        const name = /^#\/components\/schemas\/(.+)$/.exec(o.$ref)?.[1];
        expect(name && schemas[name], `${where}: $ref ${o.$ref}`).toBeTruthy();
      }
      for (const [k, v] of Object.entries(o)) if (k !== 'example' && k !== 'examples' && k !== 'enum' && k !== 'const') visit(v, `${where}/${k}`);
    };
    visit(doc.paths, '#/paths');
    visit(schemas, '#/components/schemas');
    expect(checked).toBeGreaterThan(50);
  });

  it('declares bearer auth on every /v1 operation and none on health', () => {
    expect(doc.components.securitySchemes?.bearerAuth).toMatchObject({ type: 'http', scheme: 'bearer' });
    for (const { path, method, op } of operations(doc)) {
      const security = (op as { security?: unknown[] }).security;
      if (path.startsWith('/v1/')) expect(security, `${method} ${path}`).toEqual([{ bearerAuth: [] }]);
      else expect(security ?? [], `${method} ${path}`).toEqual([]);
    }
  });
});

eachStore('openapi operations are served', (server) => {
  /** What an unknown route answers: the router's fallback, which no documented operation may give. */
  const fallbackOf = async () => {
    const res = await server().http.get('/v1/nope');
    expect(res.status).toBe(404);
    expect(res.body).toEqual({ code: 'NOT_FOUND', message: expect.any(String) });
    return res.body as { code: string; message: string };
  };

  const isFallback = (res: { status: number; body: any }, fallback: { code: string; message: string }) =>
    res.status === 404 && res.body?.code === fallback.code && res.body?.message === fallback.message;

  const concrete = (path: string, op: Operation) =>
    path.replace(/\{([^}]+)\}/g, (_, name: string) => {
      const param = op.parameters?.find((p) => p.in === 'path' && p.name === name);
      return param?.schema?.format === 'uuid' ? randomUUID() : randomSlug('openapi');
    });

  it('an unknown route and a wrong method answer the fallback (so the check below can tell)', async () => {
    const fallback = await fallbackOf();
    expect(isFallback(await server().http.request('PUT', '/v1/tenants', { body: {} }), fallback)).toBe(true);
    expect(isFallback(await server().http.request('PATCH', `/v1/tenants/${randomUUID()}`, { body: {} }), fallback)).toBe(true);
  });

  it('every documented path and method reaches its procedure', async () => {
    const fallback = await fallbackOf();
    const ops = operations(doc);
    expect(ops.length).toBe(API_MD_ENDPOINTS.length);
    for (const { path, method, op } of ops) {
      const url = concrete(path, op);
      const res = await server().http.request(method.toUpperCase(), url, method === 'post' ? { body: {} } : {});
      expect(isFallback(res, fallback), `${method.toUpperCase()} ${url} → ${res.status} ${res.text}`).toBe(false);
      expect(res.status, `${method.toUpperCase()} ${url} → ${res.status} ${res.text}`).toBeLessThan(500);
      expect(res.headers.get('content-type')).toMatch(/^application\/json\b/);
    }
  });
});
