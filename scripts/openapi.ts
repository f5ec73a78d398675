/**
 * `npm run openapi` writes openapi.yaml from the router; `--check` exits 1 when the committed
 * file differs from what the router generates.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { renderOpenApiYaml } from '../src/rest/openapi-yaml.js';

const target = fileURLToPath(new URL('../openapi.yaml', import.meta.url));
const generated = renderOpenApiYaml();

if (process.argv.includes('--check')) {
  let committed = '';
  try {
    committed = readFileSync(target, 'utf8');
  } catch {
    // missing counts as different
  }
  if (committed !== generated) {
    process.stderr.write('openapi.yaml is out of date: run `npm run openapi` and commit the result\n');
    process.exit(1);
  }
  process.stdout.write('openapi.yaml is up to date\n');
} else {
  writeFileSync(target, generated);
  process.stdout.write(`wrote ${target}\n`);
}
