/**
 * The real entry point (src/server.ts) as a child process, for tests that need a process
 * boundary: signals, exit codes, start-up configuration, "the process stays up".
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { SERVER_ENV_VARS } from '../../src/config.js';
import { Http } from './http.js';
import { freePort } from './run.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
  at: number;
}

export interface ServerProcess {
  proc: ChildProcess;
  port: number;
  url: string;
  http: Http;
  stderr(): string;
  /** Still running (no exit seen yet). */
  running(): boolean;
  exited: Promise<Exit>;
}

const children = new Set<ChildProcess>();

export async function spawnServer(env: Record<string, string>): Promise<ServerProcess> {
  const port = await freePort();
  const childEnv: NodeJS.ProcessEnv = { ...process.env };
  for (const name of SERVER_ENV_VARS) delete childEnv[name];
  Object.assign(childEnv, { ADDR: `127.0.0.1:${port}`, LOG_LEVEL: 'warn' }, env);
  const proc = spawn(process.execPath, ['--import', 'tsx', 'src/server.ts'], { cwd: ROOT, env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(proc);
  let stderr = '';
  let exit: Exit | undefined;
  proc.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  proc.stdout!.resume();
  const exited = new Promise<Exit>((resolve) =>
    proc.once('exit', (code, signal) => {
      children.delete(proc);
      exit = { code, signal, at: Date.now() };
      resolve(exit);
    }),
  );
  const url = `http://127.0.0.1:${port}`;
  return { proc, port, url, http: new Http(url), stderr: () => stderr, running: () => exit === undefined, exited };
}

/** Waits until /healthz answers; fails with the child's stderr if it exits first. */
export async function untilUp(server: ServerProcess, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!server.running()) throw new Error(`server exited before answering: ${server.stderr()}`);
    try {
      if ((await fetch(`${server.url}/healthz`, { signal: AbortSignal.timeout(2000) })).ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`server did not answer within ${timeoutMs} ms: ${server.stderr()}`);
}

/** Waits for the child to exit by itself, within `ms`. */
export async function exitWithin(server: ServerProcess, ms: number): Promise<Exit> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`server still running after ${ms} ms: ${server.stderr()}`)), ms);
  });
  try {
    return await Promise.race([server.exited, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

export async function stopServer(server: ServerProcess): Promise<void> {
  if (server.running()) server.proc.kill('SIGKILL');
  await server.exited;
}

/** Kills whatever children are left (for afterAll). */
export async function killAll(): Promise<void> {
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
