# tenant-registry: the production image.
#
#   docker build -t tenant-registry .
#
# Migrations run once per release, before the servers start (Kubernetes init container, or a
# one-off job), with the same image and the drizzle-orm migrator (no drizzle-kit at run time):
#
#   docker run --rm -e DATABASE_URL=postgres://… tenant-registry node dist/scripts/migrate.js
#
# then the server (authentication is always on with APP_ENV=prod, the image's default):
#
#   docker run -p 8090:8090 -e DATABASE_URL=postgres://… \
#     -e KEYCLOAK_ISSUER=https://keycloak/realms/platform -e API_AUDIENCE=tenant-registry tenant-registry
#
# docs/OPERATIONS.md has every variable, readiness and scaling. tests/build.test.ts runs the
# same steps outside a container (npm run build; node dist/scripts/migrate.js; node dist/src/server.js).

# ---- build: all dependencies, compile to dist/ ----
FROM node:20-bookworm-slim AS build
WORKDIR /app
# swagger-ui-dist depends on @scarf/scarf, whose postinstall reports installs: opt out.
ENV SCARF_ANALYTICS=false
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json openapi.yaml ./
COPY scripts ./scripts
COPY src ./src
COPY drizzle ./drizzle
# dist/src (server), dist/scripts/migrate.js, and beside them the files read at run time:
# dist/src/keys/argon2-worker.mjs, dist/drizzle/, dist/openapi.yaml.
RUN npm run build

# ---- runtime: production dependencies and dist/ only, plain node, non-root ----
FROM node:20-bookworm-slim AS runtime
WORKDIR /app
ENV NODE_ENV=production \
    SCARF_ANALYTICS=false \
    APP_ENV=prod \
    ADDR=:8090
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist ./dist
# The image's `node` user (uid 1000); the app writes no files.
USER node
EXPOSE 8090
# Liveness only (/healthz); readiness (/readyz, which pings the database) belongs to the
# orchestrator's readiness probe. Node's fetch, as slim images have no curl.
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
  CMD ["node", "-e", "const port = (process.env.ADDR || ':8090').split(':').pop(); fetch(`http://127.0.0.1:${port}/healthz`, { signal: AbortSignal.timeout(2000) }).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# SIGTERM drains in-flight requests and exits 0 within 10 s (node runs as PID 1 here and
# handles the signal itself).
STOPSIGNAL SIGTERM
CMD ["node", "dist/src/server.js"]
