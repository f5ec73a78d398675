/** The results table (markdown) and bench/RESULTS.md. */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import os from 'node:os';

export interface Measured {
  rps?: number;
  p50?: number;
  p99?: number;
}

export interface Row {
  scenario: string;
  measured: Measured | null;
  /** Peak RSS of the server (MB) while this scenario ran. */
  rssMb: number | null;
  baselineName: string;
  baseline: Measured | null;
  /** How the measurement compares with its baseline, e.g. "0.52× req/s". */
  ratio: string;
  target: string;
  /** null: not judged (shown for information). */
  pass: boolean | null;
  /** Evidence gathered in the run about why a target was missed. */
  why?: string;
  /** The req/s the target asks for, on the generic REST path (express + trpc-to-openapi). */
  restTargetRps?: number;
}

const num = (n: number | undefined, digits: number) =>
  n === undefined || !Number.isFinite(n) ? '—' : n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });

export const fmtRps = (n: number | undefined) => num(n, n !== undefined && n < 100 ? 1 : 0);
export const fmtMs = (n: number | undefined) => num(n, n !== undefined && n >= 100 ? 0 : n !== undefined && n >= 10 ? 1 : 2);
export const fmtRatio = (n: number) => (Number.isFinite(n) ? `${n.toFixed(2)}×` : '—');

const cell = (s: string) => s.replace(/\|/g, '\\|');

export function table(rows: Row[]): string {
  const head = [
    'scenario', 'req/s', 'p50 ms', 'p99 ms', 'peak RSS MB', 'baseline (same run)', 'baseline req/s', 'baseline p50', 'baseline p99', 'ratio', 'target', 'result',
  ];
  const lines = [`| ${head.join(' | ')} |`, `|${head.map((h, i) => (i === 0 || i === 5 || i >= 9 ? '---' : '--:')).join('|')}|`];
  for (const r of rows) {
    const result = r.pass === null ? 'info' : r.pass ? '**pass**' : '**MISS**';
    lines.push(
      `| ${[
        r.scenario,
        fmtRps(r.measured?.rps),
        fmtMs(r.measured?.p50),
        fmtMs(r.measured?.p99),
        r.rssMb === null ? '—' : r.rssMb.toFixed(0),
        r.baselineName,
        fmtRps(r.baseline?.rps),
        fmtMs(r.baseline?.p50),
        fmtMs(r.baseline?.p99),
        r.ratio,
        r.target,
        result,
      ]
        .map(cell)
        .join(' | ')} |`,
    );
  }
  return lines.join('\n');
}

export interface Machine {
  nproc: number;
  cpu: string;
  node: string;
  postgres: string | null;
}

export function machine(postgres: string | null): Machine {
  let cpu = 'unknown';
  try {
    cpu = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1]?.trim() ?? cpu;
  } catch {
    // not Linux
  }
  let nproc = os.availableParallelism();
  try {
    nproc = Number(execFileSync('nproc', { encoding: 'utf8' }).trim()) || nproc;
  } catch {
    // no coreutils
  }
  return { nproc, cpu, node: process.version, postgres };
}

export const loadAverage = () => os.loadavg().map((l) => l.toFixed(2)).join(', ');

export interface Report {
  date: Date;
  mode: string;
  modeDetails: string;
  only: string[] | null;
  machine: Machine;
  loadBefore: string;
  loadAfter: string;
  elapsedS: number;
  rows: Row[];
  settings: string[];
  notes: string[];
}

function command(r: Report): string {
  const args = [...(r.mode === 'quick' ? ['--quick'] : []), ...(r.only ? ['--only', r.only.join(',')] : [])];
  return args.length ? ` -- ${args.join(' ')}` : '';
}

export function resultsMarkdown(r: Report): string {
  const misses = r.rows.filter((row) => row.pass === false);
  const out = [
    '# tenant-registry bench results',
    '',
    `Written by \`npm run bench${command(r)}\` (bench/run.ts); see bench/README.md for what each scenario means.`,
    '',
    `- **Date**: ${r.date.toISOString()}`,
    `- **Mode**: ${r.mode} (${r.modeDetails})${r.only ? `; only: ${r.only.join(', ')}` : ''}`,
    `- **Machine**: nproc ${r.machine.nproc}, ${r.machine.cpu}, Node ${r.machine.node}${r.machine.postgres ? `, ${r.machine.postgres}` : ''}`,
    `- **Load average** (1, 5, 15 min): ${r.loadBefore} before, ${r.loadAfter} after; the whole run took ${Math.round(r.elapsedS)} s`,
    `- **Result**: ${misses.length === 0 ? 'every target met' : `${misses.length} target(s) missed: ${misses.map((m) => m.scenario).join('; ')}`}`,
    '',
    table(r.rows),
    '',
    ...(misses.length
      ? [
          '## Misses',
          '',
          ...misses.map((m) => `- **${m.scenario}**: ${m.ratio} (target ${m.target}).${m.why ? ` ${m.why}` : ''}`),
          '',
          'What the profiles and experiments behind these say: [bench/README.md, Findings](README.md#findings).',
          '',
        ]
      : []),
    '## Settings',
    '',
    ...r.settings.map((s) => `- ${s}`),
    '',
    '## Notes',
    '',
    ...r.notes.map((n) => `- ${n}`),
    '',
  ];
  return out.join('\n');
}
