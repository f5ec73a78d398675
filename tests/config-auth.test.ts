/**
 * Authentication settings in src/config.ts (APP_ENV, AUTH, KEYCLOAK_ISSUER, API_AUDIENCE),
 * and the real server's start-up: the loud warning when authentication is off, the refusal
 * to start in prod without an issuer.
 */
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../src/config.js';

const ISSUER = 'https://keycloak.example.com/realms/platform';
const AUDIENCE = 'tenant-registry';

/** loadConfig's error for an environment, or a failure if it loads. */
function configError(env: NodeJS.ProcessEnv): ConfigError {
  try {
    loadConfig(env);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error(`expected a ConfigError for ${JSON.stringify(env)}`);
}

describe('loadConfig: authentication', () => {
  for (const APP_ENV of ['stage', 'prod'] as const) {
    describe(`APP_ENV=${APP_ENV}`, () => {
      it('needs KEYCLOAK_ISSUER (the error names it)', () => {
        expect(configError({ APP_ENV, API_AUDIENCE: AUDIENCE }).message).toMatch(/KEYCLOAK_ISSUER/);
        expect(configError({ APP_ENV, API_AUDIENCE: AUDIENCE, KEYCLOAK_ISSUER: '' }).message).toMatch(/KEYCLOAK_ISSUER/);
        expect(configError({ APP_ENV }).message).toMatch(/KEYCLOAK_ISSUER|API_AUDIENCE/);
      });

      it('needs API_AUDIENCE (the error names it)', () => {
        expect(configError({ APP_ENV, KEYCLOAK_ISSUER: ISSUER }).message).toMatch(/API_AUDIENCE/);
        expect(configError({ APP_ENV, KEYCLOAK_ISSUER: ISSUER, API_AUDIENCE: '' }).message).toMatch(/API_AUDIENCE/);
      });

      it('refuses AUTH=off, even with an issuer and audience', () => {
        expect(configError({ APP_ENV, AUTH: 'off', KEYCLOAK_ISSUER: ISSUER, API_AUDIENCE: AUDIENCE }).message).toMatch(/AUTH/);
        expect(() => loadConfig({ APP_ENV, AUTH: 'off' })).toThrow(ConfigError);
      });

      it('with both set, authentication is on (AUTH=on or unset)', () => {
        expect(loadConfig({ APP_ENV, KEYCLOAK_ISSUER: ISSUER, API_AUDIENCE: AUDIENCE })).toMatchObject({
          APP_ENV,
          authEnabled: true,
          KEYCLOAK_ISSUER: ISSUER,
          API_AUDIENCE: AUDIENCE,
        });
        expect(loadConfig({ APP_ENV, AUTH: 'on', KEYCLOAK_ISSUER: ISSUER, API_AUDIENCE: AUDIENCE }).authEnabled).toBe(true);
      });
    });
  }

  it('KEYCLOAK_ISSUER must be a URL', () => {
    expect(configError({ APP_ENV: 'prod', KEYCLOAK_ISSUER: 'keycloak', API_AUDIENCE: AUDIENCE }).message).toMatch(/KEYCLOAK_ISSUER/);
  });

  it('dev is the default, and authentication is off by default there', () => {
    const config = loadConfig({});
    expect(config.APP_ENV).toBe('dev');
    expect(config.authEnabled).toBe(false);
    expect(loadConfig({ APP_ENV: 'dev' }).authEnabled).toBe(false);
    expect(loadConfig({ APP_ENV: '' }).authEnabled).toBe(false);
    expect(loadConfig({ AUTH: 'off' }).authEnabled).toBe(false);
  });

  it('dev with an issuer and an audience turns authentication on', () => {
    expect(loadConfig({ KEYCLOAK_ISSUER: ISSUER, API_AUDIENCE: AUDIENCE }).authEnabled).toBe(true);
    expect(loadConfig({ APP_ENV: 'dev', KEYCLOAK_ISSUER: ISSUER, API_AUDIENCE: AUDIENCE }).authEnabled).toBe(true);
    expect(loadConfig({ APP_ENV: 'dev', AUTH: 'on', KEYCLOAK_ISSUER: ISSUER, API_AUDIENCE: AUDIENCE }).authEnabled).toBe(true);
  });

  it('dev may still turn it off explicitly with AUTH=off', () => {
    expect(loadConfig({ APP_ENV: 'dev', AUTH: 'off', KEYCLOAK_ISSUER: ISSUER, API_AUDIENCE: AUDIENCE }).authEnabled).toBe(false);
  });

  it('dev with authentication on needs both settings', () => {
    expect(configError({ APP_ENV: 'dev', AUTH: 'on' }).message).toMatch(/KEYCLOAK_ISSUER/);
    expect(configError({ APP_ENV: 'dev', AUTH: 'on', KEYCLOAK_ISSUER: ISSUER }).message).toMatch(/API_AUDIENCE/);
    // An issuer alone means "on", so the audience is missing.
    expect(configError({ APP_ENV: 'dev', KEYCLOAK_ISSUER: ISSUER }).message).toMatch(/API_AUDIENCE/);
  });

  it('AUTH accepts only on and off; APP_ENV only dev, stage, prod', () => {
    expect(configError({ AUTH: 'yes' }).message).toMatch(/AUTH/);
    expect(configError({ APP_ENV: 'production' }).message).toMatch(/APP_ENV/);
  });
});

/** A port that was free a moment ago. */
async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

/** The environment of a child server: this one's, less everything the server reads. */
function childEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const name of ['APP_ENV', 'ADDR', 'DATABASE_URL', 'KEYCLOAK_ISSUER', 'API_AUDIENCE', 'AUTH', 'LOG_LEVEL', 'TRUST_PROXY', 'ARGON2_THREADS', 'ARGON2_MAX_QUEUE']) {
    delete env[name];
  }
  return { ...env, ...extra };
}

interface Run {
  stdout: string;
  stderr: string;
  code: number | null;
}

/**
 * Starts `npx tsx src/server.ts`; resolves once `until(stderr)` holds (then stops it with
 * SIGTERM) or once it exits by itself.
 */
function runServer(env: NodeJS.ProcessEnv, until: (stderr: string) => boolean, timeoutMs = 30_000): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn('npx', ['tsx', 'src/server.ts'], { cwd: process.cwd(), env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    let stdout = '';
    let stderr = '';
    let stopping = false;
    const stop = () => {
      if (stopping || child.pid === undefined) return;
      stopping = true;
      try {
        process.kill(-child.pid, 'SIGTERM'); // npx and the server under it
      } catch {
        /* already gone */
      }
    };
    const timer = setTimeout(() => {
      stop();
      reject(new Error(`server did not get there in ${timeoutMs} ms; stderr: ${stderr}`));
    }, timeoutMs);
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
      if (until(stderr)) stop();
    });
    child.on('error', reject);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ stdout, stderr, code });
    });
  });
}

describe('the real server at start-up', () => {
  it('dev with authentication off logs a loud warning before listening', async () => {
    const port = await freePort();
    const run = await runServer(childEnv({ APP_ENV: 'dev', ADDR: `127.0.0.1:${port}` }), (err) => err.includes('listening'));
    const lines = run.stderr.split('\n').filter(Boolean);
    const warning = lines.find((l) => /AUTHENTICATION IS OFF/.test(l));
    expect(warning, run.stderr).toBeDefined();
    expect(JSON.parse(warning!)).toMatchObject({ level: 'warn', msg: expect.stringMatching(/platform-admin.*dev/) });
    expect(lines.findIndex((l) => /AUTHENTICATION IS OFF/.test(l))).toBeLessThan(lines.findIndex((l) => l.includes('listening')));
  }, 40_000);

  it('prod without KEYCLOAK_ISSUER refuses to start, naming the variable', async () => {
    const port = await freePort();
    const run = await runServer(childEnv({ APP_ENV: 'prod', ADDR: `127.0.0.1:${port}`, API_AUDIENCE: AUDIENCE }), () => false);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/KEYCLOAK_ISSUER/);
    expect(run.stderr).not.toMatch(/listening/);
  }, 40_000);
});
