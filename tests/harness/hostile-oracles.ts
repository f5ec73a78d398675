/**
 * What API.md promises about any answer to any request (tests/hostile-input.test.ts):
 * never a 5xx; always JSON; a 4xx is exactly the error body with a code matching its status;
 * a 2xx is the documented success of the endpoint that answered. Plus the rules whose answer
 * follows from the request alone: 415 for a non-JSON content type, 400 for JSON that does not
 * parse, 400 for a malformed UUID in a path, a duplicated or empty query key, and verify's
 * MALFORMED. Written from API.md, independently of src/api's schemas.
 */
import { z } from 'zod';
import type { HostileRequest, Route } from './arbitraries.js';
import { MIB } from './arbitraries.js';
import type { HttpResponse } from './http.js';

export const ERROR_STATUS: Record<string, number> = {
  BAD_REQUEST: 400,
  UNAUTHORIZED: 401,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  METHOD_NOT_SUPPORTED: 405,
  CONFLICT: 409,
  PAYLOAD_TOO_LARGE: 413,
  UNSUPPORTED_MEDIA_TYPE: 415,
  TOO_MANY_REQUESTS: 429,
  INTERNAL_SERVER_ERROR: 500,
  SERVICE_UNAVAILABLE: 503,
};

/** Statuses a request can get with authentication off and a healthy store. */
const EXPECTED_STATUSES = new Set([200, 201, 400, 404, 405, 409, 413, 415]);

// ---------------------------------------------------------------------------------------
// Routes


/** Paths match in any letter case, with or without a trailing slash (as the server does). */
const ROUTES: { route: Route; method: string; path: RegExp; param?: 'id' | 'slug' }[] = [
  { route: 'tenants.create', method: 'POST', path: /^\/v1\/tenants\/?$/i },
  { route: 'tenants.bySlug', method: 'GET', path: /^\/v1\/tenants\/by-slug\/([^/]+)\/?$/i, param: 'slug' },
  { route: 'tenants.get', method: 'GET', path: /^\/v1\/tenants\/([^/]+)\/?$/i, param: 'id' },
  { route: 'tenants.activate', method: 'POST', path: /^\/v1\/tenants\/([^/]+)\/activate\/?$/i, param: 'id' },
  { route: 'tenants.cancel', method: 'POST', path: /^\/v1\/tenants\/([^/]+)\/cancel\/?$/i, param: 'id' },
  { route: 'entitlements.list', method: 'GET', path: /^\/v1\/entitlements\/?$/i },
  { route: 'catalog.list', method: 'GET', path: /^\/v1\/catalog\/?$/i },
  { route: 'catalog.request', method: 'POST', path: /^\/v1\/catalog\/request\/?$/i },
  { route: 'catalog.trialRequest', method: 'POST', path: /^\/v1\/catalog\/trial-request\/?$/i },
  { route: 'apiKeys.create', method: 'POST', path: /^\/v1\/api-keys\/?$/i },
  { route: 'apiKeys.list', method: 'GET', path: /^\/v1\/api-keys\/?$/i },
  { route: 'apiKeys.revoke', method: 'DELETE', path: /^\/v1\/api-keys\/([^/]+)\/?$/i, param: 'id' },
  { route: 'apiKeys.verify', method: 'POST', path: /^\/v1\/internal\/api-keys\/verify\/?$/i },
  { route: 'audit.append', method: 'POST', path: /^\/v1\/audit\/?$/i },
  { route: 'audit.query', method: 'GET', path: /^\/v1\/audit\/?$/i },
];

export interface Target {
  route: Route;
  /** The raw (still percent-encoded) path parameter, if the route has one. */
  param?: string;
}

/** The endpoint a method and URL address, if any (HEAD addresses the GET route). */
export function targetOf(method: string, url: string): Target | null {
  const { pathname } = new URL(url, 'http://h');
  const m = method === 'HEAD' ? 'GET' : method;
  for (const r of ROUTES) {
    if (r.method !== m) continue;
    const hit = r.path.exec(pathname);
    if (hit) return { route: r.route, param: r.param ? hit[1] : undefined };
  }
  return null;
}

/** Endpoints whose success changes state (verify's last_used_at is a coalesced side write). */
export const MUTATING: ReadonlySet<Route> = new Set<Route>([
  'tenants.create',
  'tenants.activate',
  'tenants.cancel',
  'catalog.request',
  'catalog.trialRequest',
  'apiKeys.create',
  'apiKeys.revoke',
  'audit.append',
]);

// ---------------------------------------------------------------------------------------
// Success bodies (API.md "Resources")

const UUID_LOWER = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const SLUG = /^[a-z0-9](?:[a-z0-9-]{1,61}[a-z0-9])$/;
const PRODUCT_KEY = /^[a-z][a-z0-9-]{1,39}$/;

const uuid = z.string().regex(UUID_LOWER);
const time = z.string().regex(TIME);

const Tenant = z.strictObject({
  id: uuid,
  slug: z.string().regex(SLUG),
  name: z.string().min(1),
  status: z.enum(['trial', 'active', 'frozen']),
  created_at: time,
  updated_at: time,
});

const Product = z.strictObject({
  key: z.string().regex(PRODUCT_KEY),
  name: z.string(),
  description: z.string(),
  requestable: z.boolean(),
  trial_days: z.number().int().min(0),
});

const Entitlement = z.strictObject({
  id: uuid,
  tenant_id: uuid,
  product: z.string().regex(PRODUCT_KEY),
  status: z.enum(['trial', 'active', 'expired', 'revoked']),
  source: z.enum(['trial', 'sales', 'manual']),
  starts_at: time,
  expires_at: time.nullable(),
  created_at: time,
  updated_at: time,
});

const ProductRequest = z.strictObject({
  id: uuid,
  tenant_id: uuid,
  product: z.string().regex(PRODUCT_KEY),
  status: z.enum(['pending', 'fulfilled', 'rejected']),
  note: z.string().nullable(),
  created_at: time,
});

const ApiKey = z.strictObject({
  id: uuid,
  tenant_id: uuid,
  name: z.string().min(1),
  prefix: z.string().regex(/^bp_[A-Za-z0-9_-]{8}$/),
  product: z.string().nullable(),
  scopes: z.array(z.string().regex(/^[a-z0-9:._-]{1,64}$/)).max(20),
  created_at: time,
  expires_at: time.nullable(),
  last_used_at: time.nullable(),
  revoked_at: time.nullable(),
});

const CreatedApiKey = z
  .strictObject({ api_key: ApiKey, plaintext: z.string().regex(/^bp_[A-Za-z0-9_-]{22}$/) })
  .refine((c) => c.plaintext.startsWith(c.api_key.prefix), 'the prefix is the plaintext’s first 11 characters');

const AuditEvent = z.strictObject({
  id: uuid,
  tenant_id: uuid.nullable(),
  product: z.string().nullable(),
  action: z.string().regex(/^[a-z][a-z0-9_.:-]{0,127}$/),
  crud: z.enum(['c', 'r', 'u', 'd']).nullable(),
  actor: z.strictObject({ id: z.string().min(1), name: z.string().nullable(), type: z.enum(['user', 'service', 'api_key', 'system']) }),
  target: z.strictObject({ id: z.string().min(1), type: z.string().min(1), name: z.string().nullable() }).nullable(),
  description: z.string().nullable(),
  source_ip: z.string().nullable(),
  is_failure: z.boolean(),
  fields: z.record(z.string(), z.string()),
  occurred_at: time,
  received_at: time,
});

const VerifyAnswer = z.union([
  z.strictObject({
    valid: z.literal(true),
    key_id: uuid,
    tenant_id: uuid,
    tenant_slug: z.string().regex(SLUG),
    product: z.string().nullable(),
    scopes: z.array(z.string()),
    expires_at: time.nullable(),
  }),
  z.strictObject({ valid: z.literal(false), code: z.enum(['MALFORMED', 'NOT_FOUND', 'REVOKED', 'EXPIRED', 'TENANT_FROZEN', 'NOT_ENTITLED']) }),
]);

const items = <T extends z.ZodType>(item: T) => z.strictObject({ items: z.array(item) });

const SUCCESS: Record<Route, { status: number; body: z.ZodType }> = {
  'tenants.create': { status: 201, body: Tenant.refine((t) => t.status === 'trial', 'new tenants start in trial') },
  'tenants.get': { status: 200, body: Tenant },
  'tenants.bySlug': { status: 200, body: Tenant },
  'tenants.activate': { status: 200, body: Tenant.refine((t) => t.status === 'active', 'activate answers the active tenant') },
  'tenants.cancel': { status: 200, body: Tenant.refine((t) => t.status === 'frozen', 'cancel answers the frozen tenant') },
  'entitlements.list': { status: 200, body: items(Entitlement) },
  'catalog.list': { status: 200, body: items(Product.refine((p) => p.requestable, 'only requestable products are listed')) },
  'catalog.request': { status: 201, body: ProductRequest.refine((r) => r.status === 'pending', 'a new request is pending') },
  'catalog.trialRequest': { status: 201, body: Entitlement.refine((e) => e.status === 'trial' && e.source === 'trial', 'a trial entitlement') },
  'apiKeys.create': { status: 201, body: CreatedApiKey },
  'apiKeys.list': { status: 200, body: items(ApiKey) },
  'apiKeys.revoke': { status: 200, body: ApiKey.refine((k) => k.revoked_at !== null, 'revoked_at is set') },
  'apiKeys.verify': { status: 200, body: VerifyAnswer },
  'audit.append': { status: 201, body: AuditEvent },
  'audit.query': { status: 200, body: z.strictObject({ items: z.array(AuditEvent), next_cursor: z.string().regex(/^[A-Za-z0-9_-]+$/).nullable() }) },
};

// ---------------------------------------------------------------------------------------
// Checks

export class ContractViolation extends Error {
  override readonly name = 'ContractViolation';
}

function violation(what: string, res: HttpResponse): never {
  throw new ContractViolation(`${what}\n  got ${res.status} content-type=${res.headers.get('content-type')} body=${res.text.slice(0, 600)}`);
}

const API_JSON = /^application\/json\s*(;|$)/i;
const isJsonType = (type: string | undefined) => type !== undefined && API_JSON.test(type);

const header = (req: HostileRequest, name: string): string | undefined =>
  Object.entries(req.headers).find(([k]) => k.toLowerCase() === name)?.[1];

/** API.md's error body, exactly; returns it. */
function checkErrorBody(res: HttpResponse): { code: string; message: string; issues?: { path: unknown[] }[] } {
  const body = res.body as Record<string, unknown> | undefined;
  if (body === null || typeof body !== 'object' || Array.isArray(body)) violation('a 4xx body must be a JSON object', res);
  const keys = Object.keys(body).sort().join(',');
  if (keys !== 'code,message' && keys !== 'code,issues,message') violation(`a 4xx body has exactly {code, message[, issues]} (keys: ${keys})`, res);
  if (typeof body.code !== 'string' || !(body.code in ERROR_STATUS)) violation('code is one of API.md’s codes', res);
  if (ERROR_STATUS[body.code] !== res.status) violation(`code ${body.code} goes with ${ERROR_STATUS[body.code]}`, res);
  if (typeof body.message !== 'string' || body.message.length === 0) violation('message is a non-empty string', res);
  if (/\bat \S+ \(|node_modules|\.ts:\d+|\bSELECT\b|\bINSERT\b|\bsyntax error\b|violates .* constraint|Error: /.test(body.message)) {
    violation('the message leaks internals (stack, SQL)', res);
  }
  if ('issues' in body) {
    const issues = body.issues;
    if (!Array.isArray(issues) || issues.length === 0) violation('issues is a non-empty array', res);
    for (const issue of issues as unknown[]) {
      const i = issue as Record<string, unknown>;
      if (i === null || typeof i !== 'object' || Object.keys(i).sort().join(',') !== 'message,path') violation('an issue is exactly {path, message}', res);
      if (!Array.isArray(i.path) || !i.path.every((seg) => typeof seg === 'string' || typeof seg === 'number')) violation('issue.path is (string|number)[]', res);
      if (typeof i.message !== 'string') violation('issue.message is a string', res);
    }
  }
  return body as { code: string; message: string; issues?: { path: unknown[] }[] };
}

const parseJson = (buf: Buffer): { ok: true; value: unknown } | { ok: false } => {
  try {
    return { ok: true, value: JSON.parse(buf.toString('utf8')) };
  } catch {
    return { ok: false };
  }
};

/** JSON bodies nested deeper than this are refused (400) by the API. */
const MAX_JSON_DEPTH = 100;

/** How many arrays/objects deep a parsed JSON value goes (iteratively: values may be 50k deep). */
function depthOf(value: unknown): number {
  let max = 0;
  const stack: [unknown, number][] = [[value, 0]];
  while (stack.length) {
    const [v, d] = stack.pop()!;
    if (v === null || typeof v !== 'object') continue;
    max = Math.max(max, d + 1);
    for (const child of Object.values(v)) stack.push([child, d + 1]);
  }
  return max;
}

const decode = (raw: string): string | null => {
  try {
    return decodeURIComponent(raw);
  } catch {
    return null;
  }
};

const UUID_ANY_CASE = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;

/** The query keys each GET endpoint reads (each single-valued). */
const QUERY_KEYS: Partial<Record<Route, string[]>> = {
  'entitlements.list': ['tenant_id'],
  'apiKeys.list': ['tenant_id', 'include_revoked'],
  'audit.query': ['tenant_id', 'product', 'actor_id', 'action', 'since', 'until', 'limit', 'cursor'],
};

interface Expectation {
  /** Acceptable statuses (API.md does not order 415 against a query 400, for one). */
  statuses: number[];
  /** When every reason is a validation 400: an issue must be on one of these keys. */
  issueOn?: string[];
}

/**
 * What API.md says this request must get, when the request alone decides it (null when the
 * answer depends on the store, or on a content encoding).
 */
function expectation(req: HostileRequest, target: Target | null): Expectation | null {
  const size = req.body?.length ?? 0;
  if (size > MIB) return { statuses: [413] };
  if (!target || header(req, 'content-encoding') !== undefined) return null;
  if (target.route === 'apiKeys.verify') return { statuses: [200] };
  const reasons: { status: number; issue?: string }[] = [];
  const params = [...new URL(req.url, 'http://h').searchParams];
  for (const [key, value] of params) if (value === '') reasons.push({ status: 400, issue: key });
  if (req.method === 'POST' && size > 0) {
    const parsed = parseJson(req.body!);
    if (!isJsonType(header(req, 'content-type'))) reasons.push({ status: 415 });
    else if (!parsed.ok || depthOf(parsed.value) > MAX_JSON_DEPTH) reasons.push({ status: 400 });
  }
  if (target.param !== undefined && target.route !== 'tenants.bySlug') {
    const id = decode(target.param);
    if (id === null || !UUID_ANY_CASE.test(id)) reasons.push({ status: 400, issue: 'id' });
  }
  for (const key of QUERY_KEYS[target.route] ?? []) {
    if (params.filter(([k]) => k === key).length > 1) reasons.push({ status: 400, issue: key });
  }
  if ((target.route === 'entitlements.list' || target.route === 'apiKeys.list') && !params.some(([k]) => k === 'tenant_id')) {
    reasons.push({ status: 400, issue: 'tenant_id' });
  }
  if (reasons.length === 0) return null;
  const statuses = [...new Set(reasons.map((r) => r.status))];
  const allIssues = reasons.every((r) => r.issue !== undefined);
  return { statuses, issueOn: allIssues ? reasons.map((r) => r.issue!) : undefined };
}

/** Verify's MALFORMED, decided by the body alone (API.md "Verify"). */
function isMalformedVerify(body: Buffer | undefined): boolean {
  const parsed = body && body.length ? parseJson(body) : { ok: false as const };
  if (!parsed.ok) return true;
  const v = parsed.value as Record<string, unknown> | null;
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return true;
  if (typeof v.key !== 'string' || !/^bp_[A-Za-z0-9_-]{22}$/.test(v.key)) return true;
  return v.product !== undefined && v.product !== null && typeof v.product !== 'string';
}

const trimmed = (v: unknown) => (typeof v === 'string' ? v.trim() : v);

/**
 * A creation answers what was sent (API.md: unknown fields ignored, strings trimmed where
 * it says so, nothing else changed): a field silently dropped or altered is a violation.
 */
function checkEcho(req: HostileRequest, route: Route, res: HttpResponse): void {
  const parsed = req.body && req.body.length ? parseJson(req.body) : { ok: false as const };
  if (!parsed.ok || parsed.value === null || typeof parsed.value !== 'object') return;
  const sent = parsed.value as Record<string, any>;
  const got = res.body as Record<string, any>;
  const same = (what: string, a: unknown, b: unknown) => {
    if (JSON.stringify(a) !== JSON.stringify(b)) violation(`${route} answers ${what} as sent (${JSON.stringify(b)?.slice(0, 200)})`, res);
  };
  switch (route) {
    case 'tenants.create':
      same('slug', got.slug, sent.slug);
      same('name (trimmed)', got.name, trimmed(sent.name));
      break;
    case 'catalog.request':
      same('product', got.product, sent.product);
      same('note (trimmed, empty → null)', got.note, trimmed(sent.note) || null);
      break;
    case 'apiKeys.create':
      same('name (trimmed)', got.api_key.name, trimmed(sent.name));
      same('scopes (deduplicated)', got.api_key.scopes, [...new Set(sent.scopes ?? [])]);
      break;
    case 'audit.append': {
      same('action', got.action, sent.action);
      same('actor.id', got.actor.id, sent.actor.id);
      const fields = sent.fields ?? {};
      same('fields (every key)', Object.keys(got.fields).sort(), Object.keys(fields).sort());
      for (const k of Object.keys(fields)) same(`fields[${JSON.stringify(k)}]`, got.fields[k], fields[k]);
      if (sent.target) same('target.id', got.target.id, sent.target.id);
      break;
    }
  }
}

export interface Outcome {
  target: Target | null;
  status: number;
  /** A 2xx of an endpoint that changes state. */
  mutated: boolean;
  /** The audit action a mutating success records (null when unknown). */
  action?: string;
  /** A valid verify (it schedules a last_used_at write). */
  verifiedKey?: boolean;
}

const ACTION_OF: Partial<Record<Route, string>> = {
  'tenants.create': 'tenant.created',
  'tenants.activate': 'tenant.activated',
  'tenants.cancel': 'tenant.canceled',
  'catalog.request': 'catalog.requested',
  'catalog.trialRequest': 'entitlement.trial_started',
  'apiKeys.create': 'api_key.created',
  'apiKeys.revoke': 'api_key.revoked',
};

/** Checks one answer against everything API.md promises about it; throws ContractViolation. */
export function checkResponse(req: HostileRequest, res: HttpResponse): Outcome {
  const target = targetOf(req.method, req.url);
  if (res.status >= 500) violation('never a 5xx', res);
  if (!EXPECTED_STATUSES.has(res.status)) violation(`a status API.md documents (${[...EXPECTED_STATUSES].join(', ')})`, res);
  const type = res.headers.get('content-type') ?? '';
  if (!/^application\/json\b/i.test(type)) violation('the answer is application/json', res);

  const expected = expectation(req, target);
  if (expected && !expected.statuses.includes(res.status)) violation(`API.md's rules give ${expected.statuses.join(' or ')} here`, res);

  if (req.method === 'HEAD') {
    if (res.text !== '') violation('HEAD has no body', res);
    return { target, status: res.status, mutated: false };
  }
  if (res.body === undefined) violation('the body is JSON', res);

  if (res.status >= 400) {
    const err = checkErrorBody(res);
    const on = expected?.issueOn;
    if (on && res.status === 400) {
      if (!err.issues) violation(`a validation 400 carries issues (on ${on.join(' or ')})`, res);
      if (!err.issues.some((i) => on.includes(i.path[0] as string))) violation(`an issue on ${on.join(' or ')}`, res);
    }
    return { target, status: res.status, mutated: false };
  }

  if (!target) violation('a 2xx came from a path and method that API.md does not list', res);
  const success = SUCCESS[target.route];
  if (res.status !== success.status) violation(`${target.route} succeeds with ${success.status}`, res);
  const parsed = success.body.safeParse(res.body);
  if (!parsed.success) violation(`${target.route}: the documented success shape (${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')})`, res);

  if (target.route === 'apiKeys.verify') {
    const answer = res.body as { valid: boolean; code?: string };
    if (isMalformedVerify(req.body) && !(answer.valid === false && answer.code === 'MALFORMED')) violation('verify answers MALFORMED for this body', res);
    return { target, status: res.status, mutated: false, verifiedKey: answer.valid };
  }
  checkEcho(req, target.route, res);
  const mutated = MUTATING.has(target.route);
  const action = target.route === 'audit.append' ? (res.body as { action: string }).action : ACTION_OF[target.route];
  return { target, status: res.status, mutated, action };
}
