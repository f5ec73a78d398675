// `npm run build`: compiles src/ and the runtime scripts to dist/ (tsconfig.build.json), then
// copies the files the compiled code reads relative to itself, so that dist/ mirrors the
// repository: dist/src/keys/argon2-worker.mjs, dist/drizzle/ (src/db/migrations.ts reads
// `../../drizzle`), dist/openapi.yaml (src/rest/docs.ts reads `../../openapi.yaml`).
// Runs with plain node; needs the dev dependencies (typescript).
import { spawnSync } from 'node:child_process';
import { cpSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const dist = join(root, 'dist');

rmSync(dist, { recursive: true, force: true });

const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
const compiled = spawnSync(process.execPath, [tsc, '-p', 'tsconfig.build.json'], { cwd: root, stdio: 'inherit' });
if (compiled.status !== 0) {
  console.error('build failed: tsc -p tsconfig.build.json');
  process.exit(compiled.status ?? 1);
}

const copies = [
  ['src/keys/argon2-worker.mjs', 'src/keys/argon2-worker.mjs'],
  ['drizzle', 'drizzle'],
  ['openapi.yaml', 'openapi.yaml'],
];
for (const [from, to] of copies) cpSync(join(root, from), join(dist, to), { recursive: true });

console.log('built dist/ (start: node dist/src/server.js; migrations: node dist/scripts/migrate.js)');
