/**
 * The API reference page: `GET /docs` renders the committed openapi.yaml with Swagger UI.
 * Everything it loads comes from this service (no CDN): the page, its start-up script, the
 * document (`/docs/openapi.yaml`, or `/docs/openapi.json`) and Swagger UI's own files from
 * the `swagger-ui-dist` package (`/docs/assets/*`). No bearer token is needed (API.md).
 *
 * The page's Content-Security-Policy lets it load and call only this origin, so "Try it out"
 * talks to this instance and nothing else (Swagger UI's online validator is switched off).
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import express from 'express';
import { parse } from 'yaml';

/** The committed document: the repository root under tsx, `dist/` in the build (copied there). */
const OPENAPI_YAML = new URL('../../openapi.yaml', import.meta.url);
const SWAGGER_UI_DIR = dirname(createRequire(import.meta.url).resolve('swagger-ui-dist/package.json'));

/** The files of swagger-ui-dist the page uses (and their source maps); nothing else is served. */
const ASSETS = new Set([
  'swagger-ui.css',
  'swagger-ui.css.map',
  'swagger-ui-bundle.js',
  'swagger-ui-bundle.js.map',
  'favicon-16x16.png',
  'favicon-32x32.png',
]);

const CSP = [
  "default-src 'none'",
  "script-src 'self'",
  // Swagger UI sets style attributes on its elements.
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data:",
  "font-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

const PAGE = `<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>tenant-registry API reference</title>
  <link rel="stylesheet" href="/docs/assets/swagger-ui.css">
  <link rel="icon" type="image/png" href="/docs/assets/favicon-32x32.png" sizes="32x32">
  <link rel="icon" type="image/png" href="/docs/assets/favicon-16x16.png" sizes="16x16">
</head>
<body>
  <noscript>The interactive reference needs JavaScript; the document itself is at <a href="/docs/openapi.yaml">/docs/openapi.yaml</a>.</noscript>
  <div id="swagger-ui"></div>
  <script src="/docs/assets/swagger-ui-bundle.js"></script>
  <script src="/docs/init.js"></script>
</body>
</html>
`;

const INIT = `window.ui = SwaggerUIBundle({
  url: '/docs/openapi.yaml',
  dom_id: '#swagger-ui',
  presets: [SwaggerUIBundle.presets.apis],
  layout: 'BaseLayout',
  deepLinking: true,
  docExpansion: 'list',
  defaultModelsExpandDepth: 0,
  displayOperationId: false,
  persistAuthorization: false,
  validatorUrl: null,
});
`;

let cached: { yaml: string; json: string } | undefined;

/** Read once, on first use: the document does not change while the process runs. */
function document() {
  if (!cached) {
    const yaml = readFileSync(OPENAPI_YAML, 'utf8');
    cached = { yaml, json: JSON.stringify(parse(yaml)) };
  }
  return cached;
}

export function docsRouter(): express.Router {
  const router = express.Router();

  router.get('/docs', (_req, res) => {
    res.set({ 'Content-Security-Policy': CSP, 'Cache-Control': 'no-cache' }).type('html').send(PAGE);
  });
  router.get('/docs/init.js', (_req, res) => {
    res.set('Cache-Control', 'no-cache').type('text/javascript').send(INIT);
  });
  router.get('/docs/openapi.yaml', (_req, res) => {
    res.set('Cache-Control', 'no-cache').type('application/yaml; charset=utf-8').send(document().yaml);
  });
  router.get('/docs/openapi.json', (_req, res) => {
    res.set('Cache-Control', 'no-cache').type('json').send(document().json);
  });
  router.get('/docs/assets/:file', (req, res, next) => {
    const file = req.params.file;
    if (!ASSETS.has(file)) return next();
    res.sendFile(join(SWAGGER_UI_DIR, file), { maxAge: '1h', dotfiles: 'deny' }, (err) => {
      if (err && !res.headersSent) next(err);
    });
  });
  return router;
}
