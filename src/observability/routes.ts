/**
 * Route templates for metric labels and request lines: `/v1/tenants/{id}`, never the path
 * with the id in it, so that a label's values stay few whatever the requests are. A request
 * that matches no operation is `unmatched` (its path is in its log line, not in a label).
 */
import { appRouter } from '../routers/index.js';
import type { Meta } from '../trpc.js';

export const UNMATCHED = 'unmatched';

interface Template {
  route: string;
  pattern: RegExp;
}

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

const procedures = Object.entries(appRouter._def.procedures).map(([name, proc]) => ({
  name,
  path: (proc as unknown as { _def: { meta?: Meta } })._def.meta?.openapi?.path,
}));

/** The REST operations (trpc-to-openapi paths); the ones with fewer parameters first (`by-slug/{slug}` before `{id}/activate`). */
const rest: Template[] = [...new Set(procedures.flatMap((p) => (p.path ? [p.path] : [])))]
  .map((route) => ({
    route,
    params: (route.match(/\{/g) ?? []).length,
    pattern: new RegExp(`^${route.split(/\{[^}]+\}/).map(escape).join('[^/]+')}$`, 'i'),
  }))
  .sort((a, b) => a.params - b.params)
  .map(({ route, pattern }) => ({ route, pattern }));

/** `/trpc/<procedure>` for each procedure (so a label is one of these strings, not the request's). */
const trpc = new Map(procedures.map((p) => [p.name, `/trpc/${p.name}`]));

/** The template of a path (no query string) that no express route claimed. */
export function templateOf(path: string): string {
  const trimmed = path.length > 1 && path.endsWith('/') ? path.slice(0, -1) : path;
  for (const t of rest) if (t.pattern.test(trimmed)) return t.route;
  if (trimmed.startsWith('/trpc/')) {
    const name = trimmed.slice('/trpc/'.length);
    return trpc.get(name) ?? (name.includes(',') ? '/trpc/{batch}' : UNMATCHED);
  }
  return UNMATCHED;
}
