/**
 * The API reference page (`/docs`, src/rest/docs.ts): served without a token, entirely from
 * this service, and, opened in headless Chromium, listing every operation of openapi.yaml.
 * The browser test saves a screenshot to test-artifacts/docs.png.
 *
 * Chromium is Debian's (`apt-get install chromium`, which .ci/run does); on a machine without
 * it the browser test is skipped and says so.
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { OidcIssuer } from './harness/oidc-issuer.js';
import { startServer, type TestServer } from './harness/server.js';

const CHROMIUM = '/usr/bin/chromium';
const HAS_CHROMIUM = existsSync(CHROMIUM);
const ARTIFACTS = fileURLToPath(new URL('../test-artifacts/', import.meta.url));
const COMMITTED = readFileSync(new URL('../openapi.yaml', import.meta.url), 'utf8');
const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'];

/** Every "METHOD /path" of the committed document. */
const documented = Object.entries((parse(COMMITTED) as { paths: Record<string, Record<string, unknown>> }).paths)
  .flatMap(([path, item]) => Object.keys(item).filter((m) => METHODS.includes(m)).map((m) => `${m.toUpperCase()} ${path}`))
  .sort();

let issuer: OidcIssuer;
let server: TestServer;

beforeAll(async () => {
  issuer = await OidcIssuer.start();
  // Authentication on: the page must work without a token all the same.
  server = await startServer('memory', { auth: issuer.authenticator() });
});

afterAll(async () => {
  await server?.close();
  await issuer?.close();
});

describe('/docs over HTTP (authentication on, no token)', () => {
  it('serves the HTML page, which loads only this origin’s files, under a same-origin CSP', async () => {
    const res = await server.http.get('/docs');
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/html/);
    const csp = res.headers.get('content-security-policy') ?? '';
    expect(csp).toContain("script-src 'self'");
    expect(csp).toContain("connect-src 'self'");
    expect(res.text).not.toMatch(/(src|href)="(https?:)?\/\//);
    expect(res.text).toContain('/docs/assets/swagger-ui-bundle.js');
    // The same endpoint really is behind authentication.
    expect((await server.http.get('/v1/catalog')).status).toBe(401);
  });

  it('serves the committed openapi.yaml byte for byte, and as JSON', async () => {
    const yaml = await server.http.get('/docs/openapi.yaml');
    expect(yaml.status).toBe(200);
    expect(yaml.headers.get('content-type')).toMatch(/^application\/yaml/);
    expect(yaml.text).toBe(COMMITTED);
    const json = await server.http.get('/docs/openapi.json');
    expect(json.status).toBe(200);
    expect(json.body).toEqual(parse(COMMITTED));
  });

  it('serves Swagger UI from swagger-ui-dist, and only the files the page needs', async () => {
    for (const file of ['swagger-ui-bundle.js', 'swagger-ui.css', 'favicon-32x32.png']) {
      const res = await server.http.get(`/docs/assets/${file}`);
      expect(res.status, file).toBe(200);
      expect(res.text.length, file).toBeGreaterThan(100);
    }
    for (const path of ['/docs/assets/index.html', '/docs/assets/package.json', '/docs/assets/..%2fpackage.json', '/docs/nope']) {
      const res = await server.http.get(path);
      expect(res.status, path).toBe(404);
      expect(res.body, path).toMatchObject({ code: 'NOT_FOUND' });
    }
  });
});

const browserTitle = HAS_CHROMIUM
  ? 'in headless Chromium: every operation listed, no request leaves this machine, screenshot saved'
  : `in headless Chromium: SKIPPED, ${CHROMIUM} is not installed (apt-get install -y chromium; .ci/run does)`;

describe('/docs in a browser', () => {
  if (!HAS_CHROMIUM) console.warn(`[docs.test] ${CHROMIUM} not found: skipping the browser test (apt-get install -y chromium)`);

  it.skipIf(!HAS_CHROMIUM)(browserTitle, { timeout: 90_000 }, async () => {
    const { chromium } = await import('playwright-core');
    const browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    try {
      const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
      const requested: string[] = [];
      const pageErrors: string[] = [];
      page.on('request', (req) => requested.push(req.url()));
      page.on('pageerror', (err) => pageErrors.push(err.message));
      page.on('console', (msg) => {
        if (msg.type() === 'error') pageErrors.push(msg.text());
      });

      await page.goto(`${server.url}/docs`, { waitUntil: 'load' });
      await page.waitForSelector('.opblock .opblock-summary-path', { timeout: 30_000 });

      // Every operation, as Swagger UI renders it: method badge + path (data-path holds the raw path).
      const listed = await page.$$eval('.opblock', (blocks) =>
        blocks.map((b) => {
          const method = b.querySelector('.opblock-summary-method')?.textContent?.trim() ?? '';
          const path = b.querySelector('.opblock-summary-path');
          return { method, path: path?.getAttribute('data-path') ?? '', text: (path?.textContent ?? '').replace(/\u200b/g, '').trim() };
        }),
      );
      expect(listed.map((op) => `${op.method} ${op.path}`).sort()).toEqual(documented);
      for (const op of listed) expect(op.text, `${op.method} ${op.path} is visible`).toBe(op.path);
      expect(await page.locator('.opblock-summary-path').first().isVisible()).toBe(true);

      // The page works as a client too: "Try it out" on /healthz calls this instance.
      const health = page.locator('.opblock', { has: page.locator('[data-path="/healthz"]') });
      await health.locator('.opblock-summary').click();
      await health.locator('button.try-out__btn').click();
      await health.locator('button.execute').click();
      await expect.poll(() => health.locator('.live-responses-table tbody .response-col_status').first().textContent(), { timeout: 10_000 }).toContain('200');

      mkdirSync(ARTIFACTS, { recursive: true });
      await page.screenshot({ path: `${ARTIFACTS}docs.png`, fullPage: true });

      const origin = new URL(server.url).origin;
      const elsewhere = requested.filter((url) => !url.startsWith('data:') && new URL(url).origin !== origin);
      expect(elsewhere, 'requests that left this service').toEqual([]);
      expect(requested).toContain(`${origin}/docs/openapi.yaml`);
      expect(pageErrors, 'errors in the page').toEqual([]);
    } finally {
      await browser.close();
    }
  });
});
