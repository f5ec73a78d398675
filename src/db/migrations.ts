/**
 * Applying and inspecting the committed drizzle-kit migrations in drizzle/.
 * Drizzle records applied migrations in drizzle.__drizzle_migrations (hash, created_at =
 * the journal's `when`); a journal entry is pending when no applied row is as recent.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { drizzle } from 'drizzle-orm/node-postgres';
import { migrate } from 'drizzle-orm/node-postgres/migrator';
import type pg from 'pg';

export const MIGRATIONS_FOLDER = fileURLToPath(new URL('../../drizzle', import.meta.url));
const MIGRATIONS = { migrationsFolder: MIGRATIONS_FOLDER, migrationsSchema: 'drizzle', migrationsTable: '__drizzle_migrations' };

interface JournalEntry {
  idx: number;
  when: number;
  tag: string;
}

export interface MigrationStatus {
  applied: string[];
  pending: string[];
}

function journal(): JournalEntry[] {
  const raw = readFileSync(`${MIGRATIONS_FOLDER}/meta/_journal.json`, 'utf8');
  return (JSON.parse(raw) as { entries: JournalEntry[] }).entries;
}

export async function applyMigrations(pool: pg.Pool): Promise<void> {
  await migrate(drizzle(pool), MIGRATIONS);
}

export async function migrationStatus(pool: pg.Pool): Promise<MigrationStatus> {
  const { rows: exists } = await pool.query<{ ok: boolean }>(
    `SELECT to_regclass('drizzle.__drizzle_migrations') IS NOT NULL AS ok`,
  );
  let lastApplied = -Infinity;
  if (exists[0]?.ok) {
    const { rows } = await pool.query<{ created_at: string }>(
      'SELECT max(created_at)::text AS created_at FROM drizzle.__drizzle_migrations',
    );
    if (rows[0]?.created_at) lastApplied = Number(rows[0].created_at);
  }
  const entries = journal();
  return {
    applied: entries.filter((e) => e.when <= lastApplied).map((e) => e.tag),
    pending: entries.filter((e) => e.when > lastApplied).map((e) => e.tag),
  };
}

/** Drops everything the migrations made (and the migration log). */
export async function dropSchema(pool: pg.Pool): Promise<void> {
  await pool.query('DROP SCHEMA IF EXISTS drizzle CASCADE');
  await pool.query('DROP SCHEMA IF EXISTS public CASCADE');
  await pool.query('CREATE SCHEMA public');
}
