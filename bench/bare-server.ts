/**
 * The baseline: a bare node:http server that answers every request with one fixed body.
 * It reads the request body first (as the real server must), then writes the same JSON
 * bytes with the same Content-Type. Env: PORT, BODY_B64 (the body, base64), STATUS.
 */
import { createServer } from 'node:http';

const body = Buffer.from(process.env.BODY_B64 ?? '', 'base64');
const status = Number(process.env.STATUS ?? 200);
const headers = { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': String(body.length) };

const server = createServer((req, res) => {
  req.on('data', () => {});
  req.on('end', () => {
    res.writeHead(status, headers);
    res.end(body);
  });
});
server.listen(Number(process.env.PORT), '127.0.0.1');
process.on('SIGTERM', () => {
  server.close(() => process.exit(0));
  server.closeAllConnections();
});
