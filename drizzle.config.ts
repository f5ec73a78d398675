/**
 * drizzle-kit configuration. `generate` (and `check`) work offline; commands that talk to
 * a database (`migrate`, `push`, `pull`, `studio`) need DATABASE_URL and never fall back
 * to a default one. Migrations are recorded in drizzle.__drizzle_migrations, the same
 * table the app's migrator (src/db/migrations.ts) reads and writes.
 */
import { defineConfig } from 'drizzle-kit';

const NEEDS_DATABASE = ['migrate', 'push', 'pull', 'introspect', 'studio'];
const url = process.env.DATABASE_URL || undefined;

if (process.argv.slice(2).some((arg) => NEEDS_DATABASE.includes(arg))) {
  const problem = !url
    ? 'is not set (e.g. DATABASE_URL=postgres://user@host:5432/db npm run db:migrate)'
    : !/^postgres(ql)?:\/\//.test(url) || !URL.canParse(url)
      ? 'must be a postgres:// URL'
      : undefined;
  if (problem) {
    process.stderr.write(`invalid configuration: DATABASE_URL: ${problem}\n`);
    process.exit(1);
  }
}

export default defineConfig({
  dialect: 'postgresql',
  schema: './src/db/schema.ts',
  out: './drizzle',
  ...(url ? { dbCredentials: { url } } : {}),
  migrations: { table: '__drizzle_migrations', schema: 'drizzle' },
});
