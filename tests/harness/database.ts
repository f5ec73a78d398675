/**
 * A fresh, migrated Postgres database for one test file, found in this order:
 *   1. TEST_DATABASE_URL: a new database on that server (dropped afterwards);
 *   2. a testcontainers Postgres, when a Docker engine answers;
 *   3. PGlite (Postgres in WebAssembly) in-process, behind a local socket.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { applyMigrations } from '../../src/db/migrations.js';

export interface TestDatabase {
  url: string;
  kind: 'TEST_DATABASE_URL' | 'testcontainers' | 'pglite';
  drop(): Promise<void>;
}

let announced = false;
const announce = (db: TestDatabase) => {
  if (announced) return;
  announced = true;
  const where = db.kind === 'TEST_DATABASE_URL' ? new URL(db.url).host : db.kind;
  console.info(`[test-db] Postgres for this file: ${db.kind} (${where})`);
};

async function onServer(adminUrl: string): Promise<TestDatabase> {
  const name = `tr_test_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    kind: 'TEST_DATABASE_URL',
    async drop() {
      const c = new pg.Client({ connectionString: adminUrl });
      await c.connect();
      try {
        await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } finally {
        await c.end();
      }
    },
  };
}

async function dockerAnswers(): Promise<boolean> {
  try {
    const { getContainerRuntimeClient } = await import('testcontainers');
    await Promise.race([getContainerRuntimeClient(), new Promise((_, reject) => setTimeout(() => reject(new Error('timeout')), 3000))]);
    return true;
  } catch {
    return false;
  }
}

async function inContainer(): Promise<TestDatabase> {
  const { PostgreSqlContainer } = await import('@testcontainers/postgresql');
  const container = await new PostgreSqlContainer('postgres:15-alpine').start();
  return { url: container.getConnectionUri(), kind: 'testcontainers', drop: async () => void (await container.stop()) };
}

async function inPglite(): Promise<TestDatabase> {
  const { PGlite } = await import('@electric-sql/pglite');
  const { PGLiteSocketServer } = await import('@electric-sql/pglite-socket');
  const db = await PGlite.create();
  // PGlite serves every connection from one session, and interleaves the messages of queries
  // sent on different connections outside a transaction: servers on it (in-process, and the
  // children tests spawn, which inherit the environment) get a pool of one connection.
  process.env.DATABASE_POOL_MAX = '1';
  // Several connections may still be open at once (the pool, the change feed's listener, tests' own).
  const server = new PGLiteSocketServer({ db, host: '127.0.0.1', port: 0, maxConnections: 32 });
  await server.start();
  const conn = server.getServerConn();
  return {
    url: `postgres://postgres@${conn}/postgres?sslmode=disable`,
    kind: 'pglite',
    async drop() {
      await server.stop();
      await db.close();
    },
  };
}

/** A fresh database with nothing in it (no migrations applied), from the same sources. */
export async function provisionEmptyDatabase(): Promise<TestDatabase> {
  const external = process.env.TEST_DATABASE_URL;
  const db = external ? await onServer(external) : (await dockerAnswers()) ? await inContainer() : await inPglite();
  announce(db);
  return db;
}

export async function provisionDatabase(): Promise<TestDatabase> {
  const db = await provisionEmptyDatabase();
  const pool = new pg.Pool({ connectionString: db.url, max: 1 });
  try {
    await applyMigrations(pool);
  } finally {
    await pool.end();
  }
  return db;
}
