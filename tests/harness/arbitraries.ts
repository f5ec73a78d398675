/**
 * fast-check arbitraries of hostile REST requests (tests/hostile-input.test.ts): every /v1
 * endpoint of API.md plus random paths and methods under /v1, with bodies that are mostly
 * wrong — one field of a valid-ish body mutated, raw text that is not JSON, odd content
 * types — and queries with duplicated keys, empty values, bad UUIDs, times and cursors.
 *
 * Requests are built against a Fixture (known tenants, keys, a real cursor), so that some
 * of them reach the store and the domain rules and do not all stop at the schema.
 * Bodies stay under ~64 KiB; `oversizedRequest` makes the > 1 MiB ones.
 */
import fc from 'fast-check';

export const MIB = 1_048_576;
/** URLs stay under this: over 16 KiB of request head, Node answers 431 itself (no body). */
export const MAX_URL = 8 * 1024;
/** Bodies of the main run stay under this (the > 1 MiB ones are separate). */
export const MAX_GENERATED_BODY = 64 * 1024;

export interface Fixture {
  /** Tenants whose state the test snapshots (trial, active, frozen, …). */
  tenantIds: string[];
  slugs: string[];
  apiKeyIds: string[];
  /** Plaintexts of keys that exist (valid, revoked, of a frozen tenant). */
  plaintexts: string[];
  /** A couple of plaintexts with a known prefix and a wrong secret (one argon2 run each, cached). */
  wrongSecrets: string[];
  /** A real next_cursor of an unfiltered audit query. */
  cursor: string;
  /** The catalog's keys, requestable or not. */
  products: string[];
}

/** The procedures of the app router, by their tRPC path. */
export type Route =
  | 'tenants.create'
  | 'tenants.get'
  | 'tenants.bySlug'
  | 'tenants.activate'
  | 'tenants.cancel'
  | 'entitlements.list'
  | 'catalog.list'
  | 'catalog.request'
  | 'catalog.trialRequest'
  | 'apiKeys.create'
  | 'apiKeys.list'
  | 'apiKeys.revoke'
  | 'apiKeys.verify'
  | 'audit.append'
  | 'audit.query';

export type Aim = Route | 'random';

export interface HostileRequest {
  /** The endpoint the generator aimed at ('random': a random path and method under /v1). */
  aim: Aim;
  method: string;
  /** Path and query as sent: already normalised by the WHATWG URL parser, like fetch does. */
  url: string;
  headers: Record<string, string>;
  body?: Buffer;
  /** fetch, or node:http (which sends bodies with GET too), with `chunked` transfer coding. */
  transport: Transport;
}

export type Transport = 'fetch' | 'node' | 'chunked';

/** A short description for failure messages (fast-check prints it for counterexamples). */
export function describeRequest(r: HostileRequest): string {
  const body = r.body
    ? ` body(${r.body.length} B)=${JSON.stringify(r.body.subarray(0, 240).toString('utf8'))}${r.body.length > 240 ? '…' : ''}`
    : '';
  const url = r.url.length > 300 ? `${r.url.slice(0, 300)}…(${r.url.length} chars)` : r.url;
  return `[${r.aim}] ${r.method} ${url} via ${r.transport} headers=${JSON.stringify(r.headers)}${body}`;
}

/** How fast-check prints a request in a counterexample: short (the failure message has it all). */
const brief = (r: HostileRequest) => `${r.method} ${r.url.slice(0, 120)}${r.body ? ` (${r.body.length} B)` : ''}`;

const withToString = (r: HostileRequest): HostileRequest =>
  Object.defineProperty(r, fc.toStringMethod, { value: () => brief(r), enumerable: false });

// ---------------------------------------------------------------------------------------
// Values

const SQL_AND_TRAVERSAL = [
  "' OR '1'='1",
  "' OR 1=1 --",
  "'; DROP TABLE tenants; --",
  '" OR ""="',
  '1; SELECT pg_sleep(5); --',
  "' UNION SELECT hash FROM api_keys --",
  "\\'; DELETE FROM audit_log; --",
  "E'\\x00'",
  '$1',
  '%',
  '_',
  '../../../../etc/passwd',
  '..\\..\\..\\windows\\win.ini',
  '/etc/passwd\u0000.png',
  '%2e%2e%2f%2e%2e%2f',
  '....//....//',
  '${jndi:ldap://example.invalid/a}',
  '{{7*7}}',
  '<script>alert(1)</script>',
  '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><x>&e;</x>',
];

const UNICODE_AND_CONTROL = [
  '',
  ' ',
  '\t\n\r ',
  '\u0000',
  'a\u0000b',
  '\ud800',
  'x\udfffy',
  '\udc00\ud800',
  '\udbff\udfff',
  '\u202eevil\u202c',
  'שלום עולם',
  'مرحبا بالعالم',
  '👩‍👩‍👧‍👦',
  '🏳️‍🌈',
  'e\u0301',
  '\u200b',
  '\ufeff',
  '\u0001\u0002\u001f\u007f',
  '\u0085\u00a0\u2028\u2029',
  '\r\n\r\n',
  '\\',
  '"',
  "'",
  '`',
  '%s%n%x',
  'ＡＢＣ１２３',
  '٣٤٥',
  'İı ß ǅ',
  '__proto__',
  'constructor',
  'prototype',
  'toString',
  'hasOwnProperty',
  'null',
  'undefined',
  'NaN',
  'Infinity',
  '-0',
  '1e309',
  'true',
  '[]',
  '{}',
];

const nastyString = fc.constantFrom(...SQL_AND_TRAVERSAL, ...UNICODE_AND_CONTROL);

/** Bytes one character takes in JSON text (escapes included). */
const jsonBytes = (s: string) => Buffer.byteLength(JSON.stringify(s)) - 2;

/** A long run of one character, around the API's length limits and far past them (< ~60 KB of JSON). */
const hugeString = fc
  .tuple(
    fc.constantFrom(40, 41, 64, 65, 100, 101, 128, 129, 200, 201, 500, 501, 2000, 2001, 5000, 20_000, 60_000),
    fc.constantFrom('a', 'é', '😀', ' ', '\u0000', '\ud800', '-', '7'),
  )
  .map(([n, ch]) => ch.repeat(Math.min(n, Math.floor(60_000 / jsonBytes(ch)))));

/**
 * A JSON value nested `depth` levels deep (arrays or objects). JSON.stringify would overflow
 * the stack on it, so the value is a marker that `encodeJson` expands into the nested text.
 */
const DEEP_LEAVES = ['"x"', '1', 'null', '{}', '[]'];
const DEEP_MARKER = /"⟦deep:(\d+):([ao]):(\d)⟧"/g;
const deepValue = fc
  .tuple(fc.constantFrom(2, 10, 100, 1000, 5000, 10_000), fc.constantFrom('a', 'o'), fc.nat(DEEP_LEAVES.length - 1))
  .map(([depth, kind, leaf]) => `⟦deep:${depth}:${kind}:${leaf}⟧`);

const expandDeep = (json: string): string =>
  json.replace(DEEP_MARKER, (_, depth: string, kind: string, leaf: string) => {
    const n = Number(depth);
    const [open, close] = kind === 'a' ? ['[', ']'] : ['{"a":', '}'];
    return open.repeat(n) + DEEP_LEAVES[Number(leaf)]! + close.repeat(n);
  });

const wrongType = fc.oneof(
  fc.integer(),
  fc.double(),
  fc.constantFrom<unknown>(null, true, false, 0, -1, 1e308, -0, 2 ** 53 + 2, [], {}, [''], { '': '' }, ['a', 1, null]),
  fc.array(fc.string(), { maxLength: 4 }),
  fc.dictionary(fc.string({ maxLength: 8 }), fc.string({ maxLength: 8 }), { maxKeys: 4 }),
);

const arbitraryText = fc.oneof(
  fc.string({ maxLength: 40 }),
  fc.string({ unit: 'grapheme', maxLength: 20 }),
  fc.string({ unit: 'binary', maxLength: 20 }),
  fc.string({ unit: 'binary-ascii', maxLength: 20 }),
);

/** Anything a field might be set to by a hostile client. */
export const hostileValue: fc.Arbitrary<unknown> = fc.oneof(
  { arbitrary: wrongType, weight: 4 },
  { arbitrary: nastyString, weight: 4 },
  { arbitrary: hugeString, weight: 2 },
  { arbitrary: deepValue, weight: 1 },
  { arbitrary: arbitraryText, weight: 3 },
  { arbitrary: fc.jsonValue({ maxDepth: 3 }), weight: 1 },
);

/** Strings that are not canonical 8-4-4-4-12 UUIDs (some only barely). */
const badUuid = fc.oneof(
  fc.constantFrom(
    '',
    ' ',
    'not-a-uuid',
    '0',
    '-1',
    'null',
    '00000000-0000-0000-0000-00000000000',
    '00000000-0000-0000-0000-0000000000000',
    '00000000000000000000000000000001',
    '{00000000-0000-0000-0000-000000000001}',
    'urn:uuid:00000000-0000-0000-0000-000000000001',
    '00000000-0000-0000-0000-00000000000g',
    '０0000000-0000-0000-0000-000000000001',
    '00000000‐0000‐0000‐0000‐000000000001',
    '00000000-0000-0000-0000-000000000001\n',
    ' 00000000-0000-0000-0000-000000000001',
    '00000000-0000-0000-0000-000000000001\u0000',
    '0000000-00000-0000-0000-000000000001',
  ),
  fc.uuid().map((u) => u.replaceAll('-', '')),
  fc.uuid().map((u) => `${u}0`),
  fc.uuid().map((u) => u.slice(1)),
  nastyString,
);

/** RFC 3339 strings and near misses (API.md: an offset is required, `t`/`z` accepted). */
const timeValue = fc.oneof(
  fc.constantFrom(
    '2026-01-01T00:00:00Z',
    '2026-01-01t00:00:00z',
    '2026-01-01T00:00:00.123456789+05:30',
    '2099-01-01T00:00:00Z',
    '2000-01-01T00:00:00Z',
    '2026-01-01',
    '2026-01-01T00:00:00',
    '2026-01-01 00:00:00Z',
    '2026-13-01T00:00:00Z',
    '2026-02-29T00:00:00Z',
    '2024-02-29T24:00:00Z',
    '2026-01-01T00:00:60Z',
    '0000-01-01T00:00:00Z',
    '0001-01-01T00:00:00+01:00',
    '9999-12-31T23:59:59-23:59',
    '+002026-01-01T00:00:00Z',
    '2026-01-01T00:00:00+2400',
    '2026-01-01T00:00:00.Z',
    '1e10',
    'yesterday',
    'Thu, 01 Jan 2026 00:00:00 GMT',
    '１９７０-01-01T00:00:00Z',
  ),
  fc.date({ min: new Date('0001-01-01T00:00:00Z'), max: new Date('9999-12-31T23:59:59Z'), noInvalidDate: true }).map((d) => d.toISOString()),
  nastyString,
);

const base64url = (s: string) => Buffer.from(s).toString('base64url');

/** A real cursor (base64url JSON, made with no filter) with its fields tampered with, as an attacker would. */
const tamperedCursor = (fx: Fixture) => {
  let real: Record<string, unknown> = {};
  try {
    real = JSON.parse(Buffer.from(fx.cursor, 'base64url').toString('utf8'));
  } catch {
    // Not the format this expects: the tampering then makes cursors from scratch.
  }
  const extremeTime = fc.constantFrom(-8.64e15, 8.64e15, -62198755200000, 253402300800000, -62135596800001, -62135596800000, 253402300799999, 0, -1, 2 ** 53, 1.5, Number.MAX_VALUE);
  return fc
    .record({
      t: fc.oneof({ arbitrary: extremeTime, weight: 4 }, { arbitrary: fc.integer(), weight: 1 }, { arbitrary: hostileValue, weight: 1 }),
      i: fc.oneof({ arbitrary: fc.constant(real.i), weight: 3 }, { arbitrary: fc.uuid(), weight: 1 }, { arbitrary: hostileValue, weight: 1 }),
    })
    .map(({ t, i }) => base64url(expandDeep(JSON.stringify({ ...real, t, i }))));
};

/** Cursors that do not decode to a position, or were made with other filters. */
const cursorValue = (fx: Fixture) =>
  fc.oneof(
    fc.constant(fx.cursor),
    tamperedCursor(fx),
    fc.constantFrom(
      'bm9wZQ',
      '',
      '=',
      'eyJ9',
      base64url('{}'),
      base64url('null'),
      base64url('[]'),
      base64url('{"t":1e300,"i":"x","f":"y"}'),
      base64url('{"t":-8640000000000001,"i":"00000000-0000-0000-0000-000000000001","f":"x"}'),
      base64url('{"t":0,"i":"00000000-0000-0000-0000-000000000001","f":"AAAAAAAAAAAAAAAA"}'),
      base64url('{"t":"0","i":1}'),
      base64url("{\"t\":0,\"i\":\"' OR 1=1 --\"}"),
      `${'A'.repeat(1001)}`,
      'a+b/c==',
      '%00',
    ),
    fc.base64String({ maxLength: 200 }),
    fc.string({ unit: 'binary', maxLength: 60 }).map(base64url),
    fc.record({ t: fc.oneof(fc.integer(), fc.double()), i: fc.oneof(fc.uuid(), fc.string()), f: fc.string() }).map((v) => base64url(JSON.stringify(v))),
    nastyString,
  );

const slugLike = fc.oneof(
  fc.stringMatching(/^[a-z0-9][a-z0-9-]{1,20}[a-z0-9]$/),
  fc.constantFrom('ab', 'a', '-abc', 'abc-', 'ABC', 'a_b', 'a'.repeat(64), 'a'.repeat(63), 'acme', 'ACME', 'a b'),
  nastyString,
);

const productLike = (fx: Fixture) =>
  fc.oneof(
    { arbitrary: fc.constantFrom(...fx.products), weight: 4 },
    { arbitrary: fc.constantFrom('unknown-product', 'Analytics', 'a', 'a'.repeat(41), 'ab', '9lives', 'analytics '), weight: 2 },
    { arbitrary: nastyString, weight: 1 },
  );

const tenantIdLike = (fx: Fixture) =>
  fc.oneof(
    { arbitrary: fc.constantFrom(...fx.tenantIds), weight: 4 },
    { arbitrary: fc.constantFrom(...fx.tenantIds).map((s) => s.toUpperCase()), weight: 1 },
    { arbitrary: fc.uuid(), weight: 2 },
    { arbitrary: badUuid, weight: 3 },
  );

const keyIdLike = (fx: Fixture) =>
  fc.oneof(
    { arbitrary: fc.constantFrom(...fx.apiKeyIds), weight: 2 },
    { arbitrary: fc.constantFrom(...fx.tenantIds), weight: 1 },
    { arbitrary: fc.uuid(), weight: 2 },
    { arbitrary: badUuid, weight: 3 },
  );

// ---------------------------------------------------------------------------------------
// Bodies

type Obj = Record<string, unknown>;

type Mutation =
  | { op: 'set'; path: string[]; value: unknown }
  | { op: 'delete'; path: string[] }
  | { op: 'extra'; key: string; value: unknown };

/** One change to a valid-ish body: a field set to a hostile value, removed, or an unknown field added. */
const mutation = (paths: string[][]): fc.Arbitrary<Mutation> =>
  fc.oneof(
    { arbitrary: fc.record({ op: fc.constant('set' as const), path: fc.constantFrom(...paths), value: hostileValue }), weight: 8 },
    { arbitrary: fc.record({ op: fc.constant('delete' as const), path: fc.constantFrom(...paths) }), weight: 2 },
    {
      arbitrary: fc.record({
        op: fc.constant('extra' as const),
        key: fc.oneof(fc.constantFrom('id', 'status', 'hash', 'created_at', 'tenant', '__proto__', 'constructor', ''), fc.string({ maxLength: 10 })),
        value: hostileValue,
      }),
      weight: 1,
    },
  );

/** Applies one mutation, copying only the objects on its path (values may be nested 10k deep). */
function applyMutation(body: Obj, m: Mutation): Obj {
  const copy: Obj = { ...body };
  if (m.op === 'extra') {
    // defineProperty, so that "__proto__" becomes an own key and reaches the JSON text.
    Object.defineProperty(copy, m.key, { value: m.value, enumerable: true, writable: true, configurable: true });
    return copy;
  }
  let parent: Obj = copy;
  for (const seg of m.path.slice(0, -1)) {
    const child = parent[seg];
    parent[seg] = child !== null && typeof child === 'object' && !Array.isArray(child) ? { ...(child as Obj) } : {};
    parent = parent[seg] as Obj;
  }
  const last = m.path[m.path.length - 1]!;
  if (m.op === 'delete') delete parent[last];
  else Object.defineProperty(parent, last, { value: m.value, enumerable: true, writable: true, configurable: true });
  return copy;
}

/**
 * A JSON body: a valid object (`validWeight` in ~15, so that most requests are rejected),
 * the valid object with one to three mutations (a few of which still leave it valid), or a
 * JSON value that is not the expected object.
 */
function objectBody(valid: fc.Arbitrary<Obj>, paths: string[][], validWeight: number): fc.Arbitrary<unknown> {
  const mutated = fc
    .tuple(valid, fc.array(mutation(paths), { minLength: 1, maxLength: 3 }))
    .map(([base, ms]) => ms.reduce(applyMutation, base));
  const others = [
    { arbitrary: mutated, weight: 12 },
    { arbitrary: fc.constantFrom<unknown>([], null, 'text', 42, true, [{}]), weight: 1 },
    { arbitrary: hostileValue, weight: 1 },
  ];
  return validWeight > 0 ? fc.oneof({ arbitrary: valid as fc.Arbitrary<unknown>, weight: validWeight }, ...others) : fc.oneof(...others);
}

/** Text that is not JSON (or only nearly), and raw bytes that are not even UTF-8. */
const rawNonJson: fc.Arbitrary<Buffer> = fc.oneof(
  fc
    .constantFrom(
      '{',
      '{"slug":',
      "{'slug':'abc'}",
      '{slug: "abc"}',
      '{"a":1} trailing',
      '{"a":1}{"b":2}',
      '[1,]',
      '{"a":1,}',
      '{"a":-}',
      '{"a":01}',
      '{"a":NaN}',
      '{"a":Infinity}',
      '{"a":undefined}',
      '{"a":"\\x00"}',
      '{"a":"\\ud800"}',
      '{"a":"unterminated}',
      '\ufeff{"slug":"abc","name":"x"}',
      'undefined',
      'NaN',
      '   ',
      '\n',
      '\u0000',
      '\u00ff',
      '<tenant><slug>abc</slug></tenant>',
      'slug=abc&name=x',
      '--x\r\nContent-Disposition: form-data; name="slug"\r\n\r\nabc\r\n--x--\r\n',
      '{"a":1e400}',
    )
    .map((s) => Buffer.from(s)),
  fc.string({ unit: 'binary', maxLength: 200 }).map((s) => Buffer.from(s)),
  fc.uint8Array({ maxLength: 2000 }).map((a) => Buffer.from(a)),
  fc.constantFrom(Buffer.from([0xff, 0xfe, 0x7b, 0x00, 0x7d, 0x00]), Buffer.from([0xc0, 0xaf]), Buffer.from([0xed, 0xa0, 0x80])),
);

/** JSON text with a key given twice (JSON.parse keeps the last). */
const duplicatedKeys = (valid: fc.Arbitrary<Obj>): fc.Arbitrary<Buffer> =>
  fc.tuple(valid, hostileValue).map(([body, value]) => {
    const [key] = Object.keys(body);
    const text = JSON.stringify(body);
    const dup = key === undefined ? text : `{${JSON.stringify(key)}:${JSON.stringify(value) ?? 'null'},${text.slice(1)}`;
    return Buffer.from(expandDeep(dup));
  });

const encodeJson = (value: unknown): Buffer => Buffer.from(expandDeep(JSON.stringify(value) ?? 'null'));
const encodeJsonArb = hostileValue.map(encodeJson);

/** The body of a request aimed at a body-taking endpoint: mostly JSON, sometimes raw or empty. */
function bodyFor(valid: fc.Arbitrary<Obj>, paths: string[][], validWeight: number): fc.Arbitrary<Buffer | undefined> {
  return fc.oneof(
    { arbitrary: objectBody(valid, paths, validWeight).map(encodeJson), weight: 14 },
    { arbitrary: rawNonJson, weight: 3 },
    { arbitrary: duplicatedKeys(valid), weight: 1 },
    { arbitrary: fc.constant(undefined), weight: 1 },
    { arbitrary: fc.constant(Buffer.alloc(0)), weight: 1 },
  );
}

const optional = <T>(arb: fc.Arbitrary<T>) => fc.option(arb, { nil: undefined, freq: 2 });

/** Drops undefined fields (they would vanish in JSON anyway; this keeps bodies readable). */
const defined = (o: Obj): Obj => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));

/** Hostile-looking text that is nonetheless legal (no NUL, no lone surrogate, not blank): it must be stored as sent. */
const legalText = (max: number) =>
  fc
    .oneof(
      fc.constantFrom(...SQL_AND_TRAVERSAL, ...UNICODE_AND_CONTROL),
      fc.string({ unit: 'grapheme', minLength: 1, maxLength: 20 }),
      fc.string({ unit: 'binary', minLength: 1, maxLength: 20 }),
    )
    .filter((t) => !t.includes('\u0000') && !/[\ud800-\udfff]/.test(t.replace(/[\ud800-\udbff][\udc00-\udfff]/g, '')) && t.trim().length > 0)
    .map((t) => [...t].slice(0, max).join(''));

const validTenant = fc.record({
  slug: fc.oneof({ arbitrary: fc.stringMatching(/^[a-z0-9][a-z0-9-]{8,20}[a-z0-9]$/), weight: 3 }, { arbitrary: slugLike, weight: 1 }),
  name: fc.oneof(fc.constant('Hostile Inc'), legalText(200)),
});

/** Tenants that exist, mostly (bad UUIDs come from the mutations). */
const knownTenantId = (fx: Fixture) =>
  fc.oneof(
    { arbitrary: fc.constantFrom(...fx.tenantIds), weight: 4 },
    { arbitrary: fc.constantFrom(...fx.tenantIds).map((s) => s.toUpperCase()), weight: 1 },
    { arbitrary: fc.uuid(), weight: 1 },
  );

const catalogProduct = (fx: Fixture) => fc.oneof({ arbitrary: fc.constantFrom(...fx.products), weight: 6 }, { arbitrary: fc.constant('unknown-product'), weight: 1 });

const validCatalogRequest = (fx: Fixture) =>
  fc.record({ tenant_id: knownTenantId(fx), product: catalogProduct(fx), note: optional(fc.oneof(legalText(2000), fc.constant(null))) }).map(defined);

const validTrialRequest = (fx: Fixture) => fc.record({ tenant_id: knownTenantId(fx), product: catalogProduct(fx) });

const validApiKey = (fx: Fixture) =>
  fc
    .record({
      // Mostly tenants that do not exist or are frozen: a creation that fails before hashing
      // costs nothing, a successful one costs an argon2 run (~200 ms).
      tenant_id: fc.oneof({ arbitrary: fc.uuid(), weight: 2 }, { arbitrary: knownTenantId(fx), weight: 1 }),
      name: fc.oneof(fc.constant('hostile key'), legalText(100)),
      product: optional(fc.oneof(fc.constantFrom(...fx.products), fc.constant(null))),
      scopes: optional(fc.oneof(fc.array(fc.constantFrom('read', 'write', 'a:b', 'ok.scope_1-2', '0'), { maxLength: 5 }), fc.constant(null))),
      expires_at: optional(fc.oneof(fc.constantFrom('2099-01-01T00:00:00Z', '9999-12-31T23:59:59.999+00:00', '2100-02-29T00:00:00z'), fc.constant(null))),
    })
    .map(defined);

const validAudit = (fx: Fixture) =>
  fc
    .record({
      action: fc.oneof(fc.constantFrom('hostile.checked', 'a', 'x'.repeat(128), 'tenant.created', 'api_key.created'), fc.stringMatching(/^[a-z][a-z0-9_.:-]{0,20}$/)),
      actor: fc
        .record({
          id: fc.oneof(fc.constant('fuzzer'), legalText(200)),
          name: optional(fc.oneof(legalText(200), fc.constant(null))),
          type: optional(fc.constantFrom('user', 'service', 'api_key', 'system', null)),
        })
        .map(defined),
      tenant_id: optional(fc.oneof(fc.constantFrom(...fx.tenantIds), fc.constant(null))),
      product: optional(fc.oneof(fc.constantFrom(...fx.products, 'not-in-catalog'), fc.constant(null))),
      crud: optional(fc.constantFrom('c', 'r', 'u', 'd', null)),
      target: optional(fc.oneof(fc.record({ id: legalText(200), type: legalText(200), name: optional(legalText(200)) }).map(defined), fc.constant(null))),
      description: optional(fc.oneof(legalText(2000), fc.constant(null))),
      source_ip: optional(fc.constantFrom('10.0.0.1', '::1', '2001:db8::1', '::ffff:10.0.0.1', null)),
      is_failure: optional(fc.constantFrom<unknown>(true, false, null)),
      fields: optional(fc.oneof(fc.dictionary(legalText(40), legalText(500), { maxKeys: 5 }), fc.constant(null))),
      occurred_at: optional(fc.oneof(fc.constantFrom('2026-01-01T00:00:00Z', '0001-01-01T00:00:00.999Z', '1999-12-31t23:59:59.123456+14:00'), fc.constant(null))),
    })
    .map(defined);

const verifyBody = (fx: Fixture): fc.Arbitrary<Buffer | undefined> => {
  const key = fc.oneof(
    { arbitrary: fc.constantFrom(...fx.plaintexts, ...fx.wrongSecrets), weight: 2 },
    // Well-formed keys with an unknown prefix: NOT_FOUND without an argon2 run.
    { arbitrary: fc.stringMatching(/^bp_[A-Za-z0-9_-]{22}$/), weight: 3 },
    { arbitrary: fc.constantFrom('bp_', 'bp_short', `bp_${'A'.repeat(23)}`, 'BP_AAAAAAAAAAAAAAAAAAAAAA', ` bp_${'A'.repeat(22)}`), weight: 2 },
    { arbitrary: hostileValue, weight: 4 },
  );
  const valid = fc
    .record({ key, product: optional(fc.oneof(productLike(fx), fc.constant(null), hostileValue)) })
    .map(defined);
  return fc.oneof(
    { arbitrary: valid.map(encodeJson), weight: 8 },
    { arbitrary: objectBody(valid, [['key'], ['product']], 0).map(encodeJson), weight: 4 },
    { arbitrary: rawNonJson, weight: 3 },
    { arbitrary: fc.constant(undefined), weight: 1 },
  );
};

// ---------------------------------------------------------------------------------------
// Paths, queries, headers

/** A path segment as sent: usually percent-encoded text, sometimes raw odd bytes of URL syntax. */
const rawSegment = fc.constantFrom(
  '%ZZ',
  '%',
  '%00',
  '%2F',
  'a%2Fb',
  '%2e%2e',
  '..',
  '.',
  ';',
  'a;b=c',
  '%E0%A4%A',
  '%ED%A0%80',
  '%C0%AF',
  '%FF%FE',
  '%25',
  '%20',
  '+',
  '*',
  '~',
  '%3Fx=1',
  'a'.repeat(3000),
);

/** encodeURIComponent, but lone surrogates (sent as U+FFFD, as any UTF-8 encoder would). */
const encodeComponent = (s: string): string =>
  [...Buffer.from(s, 'utf8')].map((b) => (/[A-Za-z0-9\-_.!~*'()]/.test(String.fromCharCode(b)) ? String.fromCharCode(b) : `%${b.toString(16).toUpperCase().padStart(2, '0')}`)).join('');

const segment = (values: fc.Arbitrary<string>) =>
  fc.oneof({ arbitrary: values.map(encodeComponent), weight: 6 }, { arbitrary: rawSegment, weight: 1 });

const QUERY_KEYS: Partial<Record<Aim, string[]>> = {
  'entitlements.list': ['tenant_id'],
  'apiKeys.list': ['tenant_id', 'include_revoked'],
  'audit.query': ['tenant_id', 'product', 'actor_id', 'action', 'since', 'until', 'limit', 'cursor'],
  'catalog.list': [],
};

function queryValue(fx: Fixture, key: string): fc.Arbitrary<string> {
  switch (key) {
    case 'tenant_id':
      return tenantIdLike(fx);
    case 'include_revoked':
      return fc.constantFrom('true', 'false', 'TRUE', 'True', '1', '0', 'yes', ' true', 'null', '');
    case 'product':
      return productLike(fx);
    case 'actor_id':
      return fc.oneof(fc.constantFrom('dev', 'fuzzer', 'x'.repeat(201)), fc.string({ maxLength: 20 }), nastyString);
    case 'action':
      return fc.oneof(fc.constantFrom('tenant.created', 'api_key.created', 'hostile.checked', 'Not An Action', 'x'.repeat(129)), nastyString);
    case 'since':
    case 'until':
      return timeValue;
    case 'limit':
      return fc.oneof(
        fc.constantFrom('1', '50', '500', '0', '501', '-1', '1.5', '1e2', '0x10', ' 5', '5 ', '+5', '05', '99999999999999999999999', 'NaN', 'Infinity', ''),
        fc.integer().map(String),
      );
    case 'cursor':
      return cursorValue(fx);
    default:
      return fc.oneof(fc.string({ maxLength: 10 }), nastyString);
  }
}

/** `k=v` pairs with duplicated keys, empty values, unknown keys, odd encodings. */
function queryString(fx: Fixture, aim: Aim): fc.Arbitrary<string> {
  const known = QUERY_KEYS[aim] ?? ['tenant_id', 'limit', 'cursor'];
  const knownPair = known.length
    ? fc.constantFrom(...known).chain((k) => queryValue(fx, k).map((v) => `${k}=${encodeComponent(v)}`))
    : fc.constant('tenant_id=x');
  const oddPair = fc.oneof(
    fc.constantFrom(
      'tenant_id',
      'include_revoked',
      'limit=',
      'tenant_id[]=x',
      'tenant_id[a]=b',
      'tenant%5Fid=00000000-0000-0000-0000-000000000001',
      '__proto__=x',
      'constructor=x',
      'toString=1',
      'hasOwnProperty=1',
      '=x',
      '&',
      '==',
      'a=%ZZ',
      'limit=%00',
      'cursor=%E0%A4%A',
      `x=${'y'.repeat(2000)}`,
    ),
    fc.tuple(fc.string({ maxLength: 8 }), fc.string({ maxLength: 8 })).map(([k, v]) => `${encodeComponent(k)}=${encodeComponent(v)}`),
  );
  // Required keys are usually present, so that requests get past "missing tenant_id".
  const required = aim === 'entitlements.list' || aim === 'apiKeys.list' ? tenantIdLike(fx).map((v) => [`tenant_id=${encodeComponent(v)}`]) : fc.constant([]);
  return fc
    .tuple(
      fc.oneof({ arbitrary: required, weight: 4 }, { arbitrary: fc.constant<string[]>([]), weight: 1 }),
      fc.array(fc.oneof({ arbitrary: knownPair, weight: 4 }, { arbitrary: oddPair, weight: 1 }), { maxLength: 4 }),
      fc.oneof({ arbitrary: fc.constant(false), weight: 4 }, { arbitrary: fc.constant(true), weight: 1 }),
    )
    .map(([req, pairs, duplicate]) => {
      const all = [...req, ...pairs];
      if (duplicate && all.length > 0) all.push(all[0]!);
      return all.length ? `?${all.join('&')}` : '';
    });
}

const JSON_TYPE = 'application/json';
const contentType = fc.oneof(
  { arbitrary: fc.constant<string | undefined>(JSON_TYPE), weight: 14 },
  {
    arbitrary: fc.constantFrom<string | undefined>(
      undefined,
      '',
      'text/plain',
      'text/plain; charset=utf-8',
      'application/xml',
      'text/html',
      'application/json; charset=utf-8',
      'application/json;charset=UTF-8',
      'APPLICATION/JSON',
      'Application/Json; Charset=utf-8',
      'application/json; charset=latin1',
      'application/json; charset=utf-16',
      'application/json;',
      'application/json, text/plain',
      'application/jsonx',
      'application/problem+json',
      'application/merge-patch+json',
      'text/json',
      'json',
      'multipart/form-data; boundary=x',
      'multipart/form-data',
      'application/x-www-form-urlencoded',
      'application/octet-stream',
      '*/*',
      ';',
      'application/json; boundary="\u00e9"',
    ),
    weight: 6,
  },
);

/** `arb` once in `1 + never` times, else undefined. */
const rarely = <T>(arb: fc.Arbitrary<T>, never: number) =>
  fc.oneof({ arbitrary: fc.constant(undefined), weight: never }, { arbitrary: arb, weight: 1 });

/** Headers a hostile or careless client adds. Values are ByteStrings (fetch refuses others). */
const extraHeaders = fc
  .record({
    accept: rarely(fc.constantFrom('text/html', 'application/xml', '*/*', 'application/json', 'text/event-stream', ''), 4),
    'idempotency-key': rarely(fc.constantFrom('hostile-1', 'hostile-2', 'k', 'x'.repeat(256), 'has space', '\u00e9t\u00e9', '', '"quoted"'), 8),
    'x-forwarded-for': rarely(fc.constantFrom('1.2.3.4', 'garbage', "' OR 1=1", '::1, 10.0.0.1', ''), 8),
    authorization: rarely(fc.constantFrom('Bearer x', 'Basic Zm9vOmJhcg==', 'Bearer', ''), 8),
    'content-encoding': rarely(fc.constantFrom('gzip', 'deflate', 'br', 'identity', 'x-unknown'), 30),
    'x-http-method-override': rarely(fc.constantFrom('DELETE', 'PUT'), 30),
    'accept-charset': rarely(fc.constantFrom('utf-16', 'latin1'), 30),
  })
  .map((h) => Object.fromEntries(Object.entries(h).filter(([, v]) => v !== undefined)) as Record<string, string>);

/** Methods Node's HTTP parser knows (an unknown one is refused by Node itself, before the app). */
const METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'HEAD', 'PROPFIND', 'MKCOL', 'LOCK', 'REPORT', 'SEARCH', 'PURGE', 'COPY', 'MOVE', 'UNLOCK'];

const PATH_WORDS = [
  'v1',
  'tenants',
  'by-slug',
  'activate',
  'cancel',
  'entitlements',
  'catalog',
  'request',
  'trial-request',
  'api-keys',
  'internal',
  'verify',
  'audit',
  'trpc',
  'healthz',
  'docs',
  'TENANTS',
  'Audit',
  '',
];

// ---------------------------------------------------------------------------------------
// Requests

interface Shape {
  aim: Aim;
  method: string;
  path: fc.Arbitrary<string>;
  query?: boolean;
  body?: fc.Arbitrary<Buffer | undefined>;
}

const TENANT_PATHS = [['slug'], ['name']];
const CATALOG_PATHS = [['tenant_id'], ['product'], ['note']];
const API_KEY_PATHS = [['tenant_id'], ['name'], ['product'], ['scopes'], ['scopes', '0'], ['expires_at']];
const AUDIT_PATHS = [
  ['action'],
  ['actor'],
  ['actor', 'id'],
  ['actor', 'name'],
  ['actor', 'type'],
  ['tenant_id'],
  ['product'],
  ['crud'],
  ['target'],
  ['target', 'id'],
  ['target', 'type'],
  ['description'],
  ['source_ip'],
  ['is_failure'],
  ['fields'],
  ['fields', 'k'],
  ['fields', '__proto__'],
  ['fields', 'constructor'],
  ['fields', ''],
  ['occurred_at'],
];

function shapes(fx: Fixture): { shape: Shape; weight: number }[] {
  const tenantSeg = segment(tenantIdLike(fx));
  const noBody = fc.oneof(
    { arbitrary: fc.constant<Buffer | undefined>(undefined), weight: 6 },
    { arbitrary: fc.constant(Buffer.from('{}')), weight: 1 },
    { arbitrary: rawNonJson, weight: 1 },
    { arbitrary: objectBody(fc.constant({}), [['id']], 0).map(encodeJson), weight: 1 },
  );
  return [
    { shape: { aim: 'tenants.create', method: 'POST', path: fc.constant('/v1/tenants'), body: bodyFor(validTenant, TENANT_PATHS, 1) }, weight: 8 },
    { shape: { aim: 'tenants.get', method: 'GET', path: tenantSeg.map((id) => `/v1/tenants/${id}`), query: true }, weight: 4 },
    {
      shape: { aim: 'tenants.bySlug', method: 'GET', path: segment(fc.oneof(fc.constantFrom(...fx.slugs), slugLike)).map((s) => `/v1/tenants/by-slug/${s}`), query: true },
      weight: 4,
    },
    { shape: { aim: 'tenants.activate', method: 'POST', path: tenantSeg.map((id) => `/v1/tenants/${id}/activate`), body: noBody }, weight: 4 },
    { shape: { aim: 'tenants.cancel', method: 'POST', path: tenantSeg.map((id) => `/v1/tenants/${id}/cancel`), body: noBody }, weight: 4 },
    { shape: { aim: 'entitlements.list', method: 'GET', path: fc.constant('/v1/entitlements'), query: true }, weight: 6 },
    { shape: { aim: 'catalog.list', method: 'GET', path: fc.constant('/v1/catalog'), query: true }, weight: 2 },
    { shape: { aim: 'catalog.request', method: 'POST', path: fc.constant('/v1/catalog/request'), body: bodyFor(validCatalogRequest(fx), CATALOG_PATHS, 2) }, weight: 8 },
    {
      shape: { aim: 'catalog.trialRequest', method: 'POST', path: fc.constant('/v1/catalog/trial-request'), body: bodyFor(validTrialRequest(fx), CATALOG_PATHS.slice(0, 2), 2) },
      weight: 6,
    },
    { shape: { aim: 'apiKeys.create', method: 'POST', path: fc.constant('/v1/api-keys'), body: bodyFor(validApiKey(fx), API_KEY_PATHS, 2) }, weight: 8 },
    { shape: { aim: 'apiKeys.list', method: 'GET', path: fc.constant('/v1/api-keys'), query: true }, weight: 6 },
    { shape: { aim: 'apiKeys.revoke', method: 'DELETE', path: segment(keyIdLike(fx)).map((id) => `/v1/api-keys/${id}`), body: noBody }, weight: 4 },
    { shape: { aim: 'apiKeys.verify', method: 'POST', path: fc.constantFrom('/v1/internal/api-keys/verify', '/v1/internal/api-keys/verify/', '/V1/Internal/API-Keys/Verify', '/v1/internal/api-keys/verify?x=1&x=2'), body: verifyBody(fx) }, weight: 10 },
    { shape: { aim: 'audit.append', method: 'POST', path: fc.constant('/v1/audit'), body: bodyFor(validAudit(fx), AUDIT_PATHS, 1) }, weight: 12 },
    { shape: { aim: 'audit.query', method: 'GET', path: fc.constant('/v1/audit'), query: true }, weight: 10 },
  ];
}

const randomPath = fc
  .tuple(
    fc.constantFrom('/v1', '/V1', '/v1/', '//v1', '/v1/.', '/v1/..', '/v1/%2e%2e', '/v1%2F', '/v1;x'),
    fc.array(fc.oneof(fc.constantFrom(...PATH_WORDS), fc.uuid(), rawSegment, fc.string({ maxLength: 12 }).map(encodeComponent)), { maxLength: 6 }),
    fc.constantFrom('', '/', '//', '?', '#frag'),
  )
  .map(([head, segs, tail]) => `${head}${segs.length ? '/' : ''}${segs.join('/')}${tail}`);

/** Turns a path into what fetch sends (dot segments resolved, odd characters escaped). */
function normalise(pathAndQuery: string): string {
  const u = new URL(pathAndQuery, 'http://h');
  return u.pathname + u.search;
}

/** fetch sends no body with GET or HEAD; node:http does (not with HEAD here: it confuses the reply). */
const sendsBody = (method: string, transport: Transport) => method !== 'HEAD' && (method !== 'GET' || transport !== 'fetch');

const transport = fc.oneof(
  { arbitrary: fc.constant<Transport>('fetch'), weight: 10 },
  { arbitrary: fc.constant<Transport>('node'), weight: 1 },
  { arbitrary: fc.constant<Transport>('chunked'), weight: 1 },
);

function build(
  aim: Aim,
  method: string,
  path: string,
  query: string,
  body: Buffer | undefined,
  type: string | undefined,
  headers: Record<string, string>,
  via: Transport = 'fetch',
  maxBody = MAX_GENERATED_BODY,
): HostileRequest {
  const h = { ...headers };
  if (type !== undefined) h['content-type'] = type;
  // Several huge or deep values may meet in one body: past the bound it is cut (a truncated body is hostile too).
  const sent = sendsBody(method, via) ? body?.subarray(0, maxBody) : undefined;
  // Past 16 KiB of request head, Node itself answers 431 (no body) before the app sees it.
  let url = normalise(path + query).slice(0, MAX_URL);
  // Dot segments may climb out of /v1 (to /docs, say); random paths stay under /v1.
  if (aim === 'random' && !/^\/v1(\/|$|\?)/i.test(url)) url = normalise(`/v1${url}`);
  return withToString({ aim, method, url, headers: h, body: sent, transport: via });
}

/** One hostile request to any endpoint (or a random path under /v1). */
export function hostileRequest(fx: Fixture): fc.Arbitrary<HostileRequest> {
  const aimed = shapes(fx).map(({ shape, weight }) => ({
    weight,
    arbitrary: fc
      .tuple(
        shape.path,
        shape.query ? queryString(fx, shape.aim) : fc.oneof({ arbitrary: fc.constant(''), weight: 9 }, { arbitrary: queryString(fx, shape.aim), weight: 1 }),
        shape.body ?? fc.oneof({ arbitrary: fc.constant<Buffer | undefined>(undefined), weight: 9 }, { arbitrary: rawNonJson, weight: 1 }),
        contentType,
        extraHeaders,
        // Mostly the endpoint's method; sometimes another one on its path.
        fc.oneof({ arbitrary: fc.constant(shape.method), weight: 12 }, { arbitrary: fc.constantFrom(...METHODS), weight: 1 }),
        transport,
      )
      .map(([path, query, body, type, headers, method, via]) => build(shape.aim, method, path, query, body, type, headers, via)),
  }));
  const random = fc
    .tuple(fc.constantFrom(...METHODS), randomPath, queryString(fx, 'random'), fc.oneof(rawNonJson, encodeJsonArb), contentType, extraHeaders, transport)
    .map(([method, path, query, body, type, headers, via]) => build('random', method, path, path.includes('?') ? '' : query, body, type, headers, via));
  return fc.oneof(...aimed, { arbitrary: random, weight: 10 });
}

/** A request whose body is over 1 MiB (API.md: 413 everywhere, verify included). */
export function oversizedRequest(fx: Fixture): fc.Arbitrary<HostileRequest> {
  return fc
    .tuple(
      fc.constantFrom(
        ['POST', '/v1/tenants'],
        ['POST', '/v1/audit'],
        ['POST', '/v1/internal/api-keys/verify'],
        ['POST', '/v1/api-keys'],
        ['POST', '/v1/catalog/request'],
        ['POST', `/v1/tenants/${fx.tenantIds[0]}/activate`],
        ['DELETE', `/v1/api-keys/${fx.apiKeyIds[0]}`],
        ['PUT', '/v1/nope'],
      ),
      fc.constantFrom(MIB + 1, MIB + 4096, 2 * MIB),
      fc.constantFrom<string | undefined>(JSON_TYPE, 'text/plain', undefined, 'application/octet-stream'),
      fc.constantFrom('x', '{"slug":"', '['),
      fc.constantFrom<Transport>('fetch', 'node', 'chunked'),
    )
    .map(([[method, path], size, type, start, via]) => {
      const body = Buffer.alloc(size, 0x20);
      body.write(start);
      return build('random', method!, path!, '', body, type, {}, via, Infinity);
    });
}
