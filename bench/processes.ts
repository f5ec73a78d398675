/**
 * Child processes of the bench: the server under test (`node --import tsx src/server.ts`, or
 * the build's `node dist/src/server.js` with --built)
 * and the bare node:http baseline, each on a free port, with peak RSS from /proc.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { SERVER_ENV_VARS } from '../src/config.js';
import { freePort } from '../tests/harness/run.js';

export const ROOT = fileURLToPath(new URL('..', import.meta.url));


/** A field of /proc/<pid>/status in MB of 10^6 bytes (VmHWM: peak RSS, VmRSS: current), or null. */
export function procStatusMb(pid: number, field: 'VmHWM' | 'VmRSS'): number | null {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? (Number(m[1]) * 1024) / 1e6 : null;
  } catch {
    return null;
  }
}

/** utime + stime of a process (all its threads), in seconds (USER_HZ is 100 on Linux). */
export function cpuSeconds(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return null;
  }
}

export interface Child {
  name: string;
  pid: number;
  url: string;
  output(): string;
  /** Peak RSS (MB) over the process's life so far, as far as the bench has seen it. */
  lifetimePeakMb(): number | null;
  /** Starts a measurement window for peak RSS (resets VmHWM when the kernel lets us). */
  beginWindow(): void;
  /** Peak RSS (MB) since beginWindow(). */
  windowPeakMb(): number | null;
  /** RSS (MB) once it first answered. */
  startRssMb: number | null;
  /** CPU time (user + system, all threads) so far, in seconds. */
  cpuSeconds(): number | null;
  stop(): Promise<void>;
}

const children = new Set<ChildProcess>();
/** Kills whatever is still running when the harness exits, however it exits. */
export function killChildren(): void {
  for (const c of children) c.kill('SIGKILL');
}
process.on('exit', killChildren);

async function spawnChild(name: string, args: string[], env: NodeJS.ProcessEnv, port: number, healthPath: string, discardStderr = false): Promise<Child> {
  const proc = spawn(process.execPath, args, { cwd: ROOT, env, stdio: ['ignore', 'pipe', discardStderr ? 'ignore' : 'pipe'] });
  children.add(proc);
  let output = '';
  const keep = (chunk: string) => (output = (output + chunk).slice(-8000));
  proc.stdout!.setEncoding('utf8').on('data', keep);
  proc.stderr?.setEncoding('utf8').on('data', keep);
  let exited = false;
  const exit = new Promise<void>((resolve) =>
    proc.once('exit', () => {
      exited = true;
      children.delete(proc);
      resolve();
    }),
  );
  const pid = proc.pid!;
  const url = `http://127.0.0.1:${port}`;

  // Peak RSS: VmHWM, plus a 100 ms sampler of VmRSS in case VmHWM cannot be reset.
  let lifetime: number | null = null;
  let sampled: number | null = null;
  let resettable = false;
  const note = (mb: number | null) => {
    if (mb !== null) lifetime = Math.max(lifetime ?? 0, mb);
  };
  const sampler = setInterval(() => {
    const rss = procStatusMb(pid, 'VmRSS');
    if (rss !== null) sampled = Math.max(sampled ?? 0, rss);
    note(rss);
  }, 100);
  sampler.unref();

  const deadline = Date.now() + 60_000;
  for (;;) {
    if (exited) throw new Error(`${name} exited before answering:\n${output}`);
    if (Date.now() > deadline) throw new Error(`${name} did not answer within 60 s:\n${output}`);
    try {
      if ((await fetch(`${url}${healthPath}`, { signal: AbortSignal.timeout(2000) })).ok) break;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }

  const startRssMb = procStatusMb(pid, 'VmRSS');
  const lifetimePeakMb = () => {
    note(procStatusMb(pid, 'VmHWM'));
    return lifetime;
  };
  return {
    name,
    pid,
    url,
    output: () => output,
    lifetimePeakMb,
    startRssMb,
    cpuSeconds: () => cpuSeconds(pid),
    beginWindow() {
      note(procStatusMb(pid, 'VmHWM'));
      sampled = procStatusMb(pid, 'VmRSS');
      try {
        // "5" resets the peak RSS (VmHWM) to the current RSS (proc(5), clear_refs).
        writeFileSync(`/proc/${pid}/clear_refs`, '5');
        resettable = true;
      } catch {
        resettable = false;
      }
    },
    windowPeakMb() {
      const hwm = procStatusMb(pid, 'VmHWM');
      note(hwm);
      if (resettable && hwm !== null) return Math.max(hwm, sampled ?? 0);
      return sampled;
    },
    async stop() {
      lifetimePeakMb();
      clearInterval(sampler);
      if (exited) return;
      proc.kill('SIGTERM');
      const timer = setTimeout(() => proc.kill('SIGKILL'), 12_000);
      await exit;
      clearTimeout(timer);
    },
  };
}

function childEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const name of SERVER_ENV_VARS) delete env[name];
  return Object.assign(env, extra);
}

export const BUILT_ENTRY = 'dist/src/server.js';
let serverEntry = ['--import', 'tsx', 'src/server.ts'];
/** `--built`: the compiled server of `npm run build` instead of src/ through tsx. */
export function useBuiltServer(): void {
  if (!existsSync(path.join(ROOT, BUILT_ENTRY))) throw new Error(`${BUILT_ENTRY} is missing: run \`npm run build\` first`);
  serverEntry = [BUILT_ENTRY];
}
let extraNodeArgs: string[] = [];
/** `--node-args`: node flags for every server under test (e.g. a heap limit). */
export function setServerNodeArgs(args: string[]): void {
  extraNodeArgs = args;
}
export const serverCommand = () => ['node', ...extraNodeArgs, ...serverEntry].join(' ');

/**
 * The server under test: auth off (APP_ENV=dev, AUTH=off, no issuer), LOG_LEVEL=silent,
 * memory store unless DATABASE_URL is given. `discardStderr` sends its log lines to
 * /dev/null instead of the harness (which is also the load generator).
 */
export async function startServer(name: string, env: Record<string, string> = {}, nodeArgs: string[] = [], discardStderr = false): Promise<Child> {
  const port = await freePort();
  const vars = childEnv({ APP_ENV: 'dev', AUTH: 'off', LOG_LEVEL: 'silent', ADDR: `127.0.0.1:${port}`, ...env });
  return spawnChild(name, [...extraNodeArgs, ...nodeArgs, ...serverEntry], vars, port, '/healthz', discardStderr);
}

/** The bare node:http baseline answering every request with `body`. */
export async function startBare(body: Buffer | string, status = 200): Promise<Child> {
  const port = await freePort();
  const vars = childEnv({ PORT: String(port), BODY_B64: Buffer.from(body).toString('base64'), STATUS: String(status) });
  return spawnChild('bare node:http', ['--import', 'tsx', 'bench/bare-server.ts'], vars, port, '/');
}

/** A calibration server of bench/floor-server.ts: a no-work tRPC procedure answering `body`. */
export async function startFloor(mode: 'caller' | 'express', body: Buffer, method: 'GET' | 'POST', procedurePath: string): Promise<Child> {
  const port = await freePort();
  const vars = childEnv({ PORT: String(port), BODY_B64: body.toString('base64'), MODE: mode, PROCEDURE_METHOD: method, PROCEDURE_PATH: procedurePath });
  const name = mode === 'caller' ? 'no-work procedure, tRPC caller' : 'no-work procedure, express + trpc-to-openapi';
  return spawnChild(name, ['--import', 'tsx', 'bench/floor-server.ts'], vars, port, '/healthz');
}
