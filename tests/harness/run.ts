/**
 * Child processes for the build and examples tests: run a command to completion, or keep a
 * server running, with bounded waits and nothing left behind (`killChildren()` in afterAll).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  timeoutMs?: number;
}

const children = new Set<ChildProcess>();

/** Runs `command args…` to its end (killed after `timeoutMs`) and collects its output. */
export function run(command: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const proc = spawn(command, args, { cwd: opts.cwd, env: opts.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(proc);
    let stdout = '';
    let stderr = '';
    proc.stdout!.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    proc.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const timer = setTimeout(() => {
      stderr += `\n[run] ${command} killed after ${opts.timeoutMs} ms`;
      proc.kill('SIGKILL');
    }, opts.timeoutMs ?? 60_000);
    proc.once('error', (err) => {
      clearTimeout(timer);
      children.delete(proc);
      reject(err);
    });
    proc.once('close', (code, signal) => {
      clearTimeout(timer);
      children.delete(proc);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/** Whether `command` can be started (e.g. `go`, `python3`): looks it up on PATH. */
export async function hasCommand(command: string): Promise<boolean> {
  try {
    const res = await run('sh', ['-c', `command -v ${command}`], { timeoutMs: 5000 });
    return res.code === 0;
  } catch {
    return false;
  }
}

export async function freePort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((resolve, reject) => srv.once('error', reject).listen(0, '127.0.0.1', resolve));
  const { port } = srv.address() as net.AddressInfo;
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  return port;
}

export interface Background {
  proc: ChildProcess;
  output(): string;
  /** Resolves with the exit code (or null when killed by a signal). */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  running(): boolean;
}

/** Starts a long-running process (a server); its stdout and stderr are kept together. */
export function background(command: string, args: string[], opts: Omit<RunOptions, 'timeoutMs'> = {}): Background {
  const proc = spawn(command, args, { cwd: opts.cwd, env: opts.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(proc);
  let output = '';
  let done = false;
  proc.stdout!.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  proc.stderr!.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    proc.once('exit', (code, signal) => {
      done = true;
      children.delete(proc);
      resolve({ code, signal });
    }),
  );
  return { proc, output: () => output, exited, running: () => !done };
}

/** Waits until `url` answers 2xx; fails early, with the output, if the process exits. */
export async function untilAnswers(server: Background, url: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!server.running()) throw new Error(`the process exited before ${url} answered:\n${server.output()}`);
    try {
      if ((await fetch(url, { signal: AbortSignal.timeout(2000) })).ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`${url} did not answer within ${timeoutMs} ms:\n${server.output()}`);
}

/** Kills whatever is still running (for afterAll). */
export async function killChildren(): Promise<void> {
  await Promise.all(
    [...children].map(
      (proc) =>
        new Promise<void>((resolve) => {
          if (proc.exitCode !== null || proc.signalCode !== null) return resolve();
          proc.once('exit', () => resolve());
          proc.kill('SIGKILL');
        }),
    ),
  );
}

/** The environment of a child, without the server's variables from this process's environment. */
export function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const name of Object.keys(env)) {
    if (/^(APP_ENV|ADDR|DATABASE_URL|KEYCLOAK_ISSUER|API_AUDIENCE|AUTH|LOG_LEVEL|TRUST_PROXY|ARGON2_.*|OTEL_.*|METRICS_.*|NODE_OPTIONS|NODE_PATH|REGISTRY_.*)$/.test(name)) delete env[name];
  }
  return { ...env, ...extra };
}
