/**
 * `npm run bench [-- --quick] [-- --only a,b] [-- --out file]`: starts what it needs (a fresh
 * Postgres database, the server as child processes, the bare baselines), loads them with
 * autocannon from this process, and writes bench/RESULTS.md. See bench/README.md.
 */
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import pg from 'pg';
import { baselinePool, createBenchDatabase, DEFAULT_ADMIN_URL, type BenchDatabase } from './database.js';
import { killChildren, ROOT, serverCommand, setServerNodeArgs, startServer, useBuiltServer, type Child } from './processes.js';
import { loadAverage, machine, resultsMarkdown, table, type Row } from './report.js';
import {
  auditAppend,
  auditQueries,
  coldVerify,
  createTenant,
  explainRestMisses,
  MODES,
  tenantPostgres,
  tenantVsBare,
  warmVerify,
  type Ctx,
} from './scenarios.js';
import { seedAudit } from './sql.js';

const SCENARIOS = ['warm-verify', 'tenant-memory', 'cold-verify', 'create-tenant', 'tenant-pg', 'audit-query', 'audit-append'] as const;
type Scenario = (typeof SCENARIOS)[number];
const POSTGRES: Scenario[] = ['warm-verify', 'cold-verify', 'create-tenant', 'tenant-pg', 'audit-query', 'audit-append'];
const ACME = '00000000-0000-0000-0000-000000000001';

function usage(problem?: string): never {
  if (problem) process.stderr.write(`${problem}\n`);
  process.stderr.write(
    `usage: npm run bench [-- --quick] [--only ${SCENARIOS.join(',')}] [--tsx] [--node-args "ARGS"] [--out FILE]\n` +
      '  the server under test is the production build: the bench runs `npm run build` first and starts node dist/src/server.js\n' +
      '  --tsx: run src/ through tsx instead (what `npm start` does), without building\n' +
      '  --node-args "ARGS": extra node flags for the server under test, e.g. "--max-old-space-size=128"\n' +
      '  BENCH_DATABASE_URL: admin URL of the Postgres to create the bench database on\n' +
      `  (default ${DEFAULT_ADMIN_URL})\n`,
  );
  process.exit(problem ? 2 : 0);
}

function parseArgs(argv: string[]) {
  let quick = false;
  let built = true;
  let nodeArgs: string[] = [];
  let only: Scenario[] | null = null;
  let out = path.join(ROOT, 'bench', 'RESULTS.md');
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--quick') quick = true;
    else if (arg === '--full') quick = false;
    else if (arg === '--built') built = true;
    else if (arg === '--tsx') built = false;
    else if (arg === '--node-args' || arg.startsWith('--node-args=')) {
      const list = arg.includes('=') ? arg.slice('--node-args='.length) : argv[++i];
      if (list === undefined) usage('--node-args needs a value, e.g. "--max-old-space-size=128"');
      nodeArgs = list.split(/\s+/).filter(Boolean);
    }
    else if (arg === '--help' || arg === '-h') usage();
    else if (arg === '--only' || arg.startsWith('--only=')) {
      const list = arg.includes('=') ? arg.slice('--only='.length) : argv[++i];
      if (!list) usage('--only needs a list of scenarios');
      only = list.split(',').map((s) => s.trim()).filter(Boolean) as Scenario[];
      const unknown = only.filter((s) => !SCENARIOS.includes(s));
      if (unknown.length) usage(`unknown scenario(s): ${unknown.join(', ')}`);
    } else if (arg === '--out' || arg.startsWith('--out=')) {
      const file = arg.includes('=') ? arg.slice('--out='.length) : argv[++i];
      if (!file) usage('--out needs a file');
      out = path.resolve(file);
    } else usage(`unknown argument: ${arg}`);
  }
  return { quick, built, nodeArgs, only, out };
}

/** The server under test is what production runs: `npm run build`'s dist/ (scripts/build.mjs). */
function buildServer(): void {
  process.stderr.write('[bench] building the server (node scripts/build.mjs)\n');
  const built = spawnSync(process.execPath, ['scripts/build.mjs'], { cwd: ROOT, stdio: ['ignore', 'inherit', 'inherit'] });
  if (built.status !== 0) throw new Error('npm run build failed; `npm run bench -- --tsx` runs src/ without building');
  useBuiltServer();
}

async function postgresVersion(adminUrl: string): Promise<string | null> {
  const c = new pg.Client({ connectionString: adminUrl });
  try {
    await c.connect();
    const { rows } = await c.query<{ v: string }>("SELECT 'PostgreSQL ' || current_setting('server_version') AS v");
    return rows[0]?.v ?? null;
  } finally {
    await c.end().catch(() => undefined);
  }
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const mode = MODES[args.quick ? 'quick' : 'full'];
  if (args.built) buildServer();
  setServerNodeArgs(args.nodeArgs);
  const selected = new Set<Scenario>(args.only ?? SCENARIOS);
  const adminUrl = process.env.BENCH_DATABASE_URL || DEFAULT_ADMIN_URL;
  const began = performance.now();
  const date = new Date();
  const loadBefore = loadAverage();
  const cores = os.availableParallelism();
  const log = (msg: string) => process.stderr.write(`[bench ${((performance.now() - began) / 1000).toFixed(0).padStart(4)} s] ${msg}\n`);
  const ctx: Ctx = { mode, rows: [], notes: [], log };
  const servers: Child[] = [];
  const needsPostgres = POSTGRES.some((s) => selected.has(s));
  let db: BenchDatabase | null = null;
  let pool: pg.Pool | null = null;
  let pgVersion: string | null = null;

  log(`mode ${mode.name}; scenarios: ${[...selected].join(', ')}; load average ${loadBefore}`);
  try {
    if (selected.has('tenant-memory')) {
      const mem = await startServer('server (memory store)');
      servers.push(mem);
      try {
        await tenantVsBare(ctx, mem, ACME, 'GET /v1/tenants/{id}, memory store, 32 conns', 0.15);
      } finally {
        await mem.stop();
      }
    }

    if (needsPostgres) {
      pgVersion = await postgresVersion(adminUrl);
      db = await createBenchDatabase(adminUrl);
      log(`database ${db.name} created and migrated on ${new URL(adminUrl).host}`);
      pool = baselinePool(db.url);
      let seeded: { events: number; start: Date; end: Date } | null = null;
      if (selected.has('audit-query')) {
        const t0 = performance.now();
        log(`seeding 1,000 tenants and ${mode.auditEvents.toLocaleString('en-US')} audit events`);
        seeded = { events: mode.auditEvents, ...(await seedAudit(pool, mode.auditEvents)) };
        ctx.notes.push(
          `Seeding ${mode.auditEvents.toLocaleString('en-US')} audit events (one INSERT … SELECT over generate_series, then VACUUM ANALYZE) took ${((performance.now() - t0) / 1000).toFixed(1)} s.`,
        );
      }

      const server = await startServer('server (Postgres)', { DATABASE_URL: db.url });
      servers.push(server);
      try {
        if (selected.has('warm-verify')) await warmVerify(ctx, server);
        const { rows } = await pool.query<{ id: string }>('SELECT id FROM tenants ORDER BY created_at LIMIT 1');
        let tenantId = rows[0]?.id;
        if (!tenantId) {
          const res = await fetch(`${server.url}/v1/tenants`, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ slug: 'bench-tenant', name: 'Bench tenant' }),
          });
          tenantId = ((await res.json()) as { id: string }).id;
        }
        if (selected.has('tenant-pg')) await tenantPostgres(ctx, server, pool, tenantId);
        if (seeded) await auditQueries(ctx, server, pool, seeded);
        if (selected.has('create-tenant')) await createTenant(ctx, server, pool);
        if (selected.has('audit-append')) await auditAppend(ctx, server, pool, tenantId);
      } finally {
        await server.stop();
      }

      if (selected.has('cold-verify')) {
        const cold = await startServer('server (Postgres, cold verify)', { DATABASE_URL: db.url, ARGON2_MAX_QUEUE: '100000' });
        servers.push(cold);
        try {
          await coldVerify(ctx, cold, cores);
        } finally {
          await cold.stop();
        }
      }
    }
  } finally {
    await Promise.all(servers.map((s) => s.stop().catch(() => undefined)));
    killChildren();
    await pool?.end().catch(() => undefined);
    await db?.drop().catch((err) => log(`could not drop ${db?.name}: ${(err as Error).message}`));
  }

  explainRestMisses(ctx);
  const maxPeak = Math.max(...servers.map((s) => s.lifetimePeakMb() ?? 0));
  const memoryRow: Row = {
    scenario: 'memory: server peak RSS, whole run',
    measured: null,
    rssMb: maxPeak,
    baselineName: '—',
    baseline: null,
    ratio: '—',
    target: '≤ 300 MB',
    pass: maxPeak <= 300,
  };
  if (!memoryRow.pass) {
    memoryRow.why =
      `Per server process, RSS when it first answered → peak: ${servers.map((s) => `${s.name} ${s.startRssMb?.toFixed(0) ?? '?'} → ${s.lifetimePeakMb()?.toFixed(0) ?? '?'} MB`).join('; ')}. ` +
      'Under load the V8 heap grows far past its live size before a major GC, and each argon2 worker keeps its 64 MiB WebAssembly memory after its first hash.';
  }
  ctx.rows.push(memoryRow);
  ctx.notes.push(
    `Peak RSS (VmHWM of /proc/<pid>/status, MB = 10^6 bytes) per server process: ${servers.map((s) => `${s.name} ${s.startRssMb?.toFixed(0) ?? '?'} MB when it first answered, peak ${s.lifetimePeakMb()?.toFixed(0) ?? '?'} MB`).join('; ')}.`,
  );

  const loadAfter = loadAverage();
  const elapsedS = (performance.now() - began) / 1000;
  const md = resultsMarkdown({
    date,
    mode: mode.name,
    modeDetails:
      `${mode.runS} s per run after ${mode.warmupS} s of warm-up, audit pages ${mode.auditRunS} s at ${mode.connections} conns and ${mode.auditLatencyS} s at 1 conn, ` +
      `cold verify ${mode.coldS} s, ${mode.auditEvents.toLocaleString('en-US')} audit events`,
    only: args.only,
    machine: machine(pgVersion),
    loadBefore,
    loadAfter,
    elapsedS,
    rows: ctx.rows,
    settings: [
      `Server under test: \`${serverCommand()}\` as a child process with \`APP_ENV=dev\`, \`AUTH=off\` (no issuer) and \`LOG_LEVEL=silent\`. ` +
        'Production runs with authentication on, which adds a JWT check per request (a cached SHA-256 lookup after the first).',
      `Load: autocannon 8 (programmatic) from the harness process, ${mode.connections} connections unless stated; latencies recorded per response at full resolution. ` +
        'Direct-SQL baselines: the same statements through a bare `pg` Pool of 10 (the server’s pool size) driven by the same number of concurrent workers. ' +
        'Every run is preceded by a warm-up of the same load, not counted.',
      'req/s counts 2xx answers only; failed requests are listed in the notes, and a run with more than 0.1 % of them fails its target.',
      'Postgres scenarios run on a fresh database (`tr_bench_<random>` on BENCH_DATABASE_URL), migrated with the committed migrations and dropped at the end.',
      `Audit pages are measured twice: at ${mode.connections} connections for throughput against the SQL, and at 1 connection for latency ` +
        `(with ${mode.connections} connections on ${cores} cores, p50 is mostly queueing: ≈ ${mode.connections} ÷ req/s).`,
    ],
    notes: ctx.notes,
  });
  writeFileSync(args.out, md);
  process.stdout.write(`\n${table(ctx.rows)}\n\n`);
  const misses = ctx.rows.filter((r) => r.pass === false);
  log(`${misses.length === 0 ? 'every target met' : `${misses.length} miss(es)`}; wrote ${path.relative(process.cwd(), args.out)} in ${elapsedS.toFixed(0)} s; load average ${loadAfter}`);
}

main().catch((err) => {
  process.stderr.write(`bench failed: ${(err as Error).stack ?? err}\n`);
  killChildren();
  process.exit(1);
});
