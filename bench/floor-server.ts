/**
 * Calibration servers: a tRPC procedure that does no work at all (it returns the JSON body
 * it was given, parsed once at start-up) served two ways, to show what the frameworks
 * themselves cost on this machine in the same run as the bare baseline:
 * - MODE=caller: a plain node:http handler reads the body and calls the procedure through
 *   tRPC's server-side caller (no middleware; `z.any()` in and out);
 * - MODE=express: express + express.json() + trpc-to-openapi's express middleware, the
 *   procedure at PROCEDURE_METHOD PROCEDURE_PATH (OpenAPI meta; the smallest object schema
 *   trpc-to-openapi accepts in, `z.any()` out).
 * Env: PORT, BODY_B64 (the answer), MODE, PROCEDURE_METHOD, PROCEDURE_PATH.
 */
import { createServer } from 'node:http';
import { initTRPC } from '@trpc/server';
import express from 'express';
import { createOpenApiExpressMiddleware, type OpenApiMeta } from 'trpc-to-openapi';
import { z } from 'zod';

const answer: unknown = JSON.parse(Buffer.from(process.env.BODY_B64 ?? '', 'base64').toString('utf8'));
const method = (process.env.PROCEDURE_METHOD ?? 'POST') as 'GET' | 'POST';
const path = (process.env.PROCEDURE_PATH ?? '/') as `/${string}`;

const t = initTRPC.meta<OpenApiMeta>().create();
// trpc-to-openapi wants an object input: the path's {id} for GET, any object for POST.
const inputSchema = process.env.MODE !== 'express' ? z.any() : method === 'GET' ? z.object({ id: z.string() }) : z.looseObject({});
const noWork = t.procedure.meta({ openapi: { method, path } }).input(inputSchema).output(z.any());
const router = t.router({ noWork: method === 'GET' ? noWork.query(() => answer) : noWork.mutation(() => answer) });
const caller = t.createCallerFactory(router)({});

const handler =
  process.env.MODE === 'express'
    ? express()
        .get('/healthz', (_req, res) => void res.json({ status: 'ok' }))
        .use(express.json()).use(createOpenApiExpressMiddleware({ router, createContext: () => ({}) }))
    : (req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse) => {
        const chunks: Buffer[] = [];
        req.on('data', (c: Buffer) => chunks.push(c));
        req.on('end', () => {
          let input: unknown;
          try {
            input = JSON.parse(Buffer.concat(chunks).toString('utf8'));
          } catch {
            input = undefined;
          }
          void caller.noWork(input as never).then((data) => {
            const json = JSON.stringify(data);
            res.writeHead(200, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(json) });
            res.end(json);
          });
        });
      };

const server = createServer(handler);
server.listen(Number(process.env.PORT), '127.0.0.1');
process.on('SIGTERM', () => {
  server.close(() => process.exit(0));
  server.closeAllConnections();
});
