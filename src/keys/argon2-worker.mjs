// One argon2id hash per message, off the event loop. Plain JavaScript so that it runs the
// same under tsx, vitest and the compiled build.
import { parentPort } from 'node:worker_threads';
import { argon2id } from 'hash-wasm';

parentPort.on('message', async ({ id, password, salt, params }) => {
  try {
    const hash = await argon2id({ password, salt, ...params, outputType: 'binary' });
    parentPort.postMessage({ id, hash });
  } catch (err) {
    parentPort.postMessage({ id, error: String(err?.message ?? err) });
  }
});
