/**
 * A worker thread running a TypeScript module, with native kernels on one
 * thread each: the workers themselves are the parallelism.
 *
 *   const worker = typeScriptWorker(new URL('./merge-worker.ts', import.meta.url));
 *
 * NOTE: lorakit ships TypeScript run by tsx; worker threads do not inherit
 * its loader, so each one starts in worker-bootstrap.mjs, which registers it.
 */
import { Worker } from 'node:worker_threads';

export function typeScriptWorker(module: URL): Worker {
  return new Worker(new URL('./worker-bootstrap.mjs', import.meta.url), {
    argv: [module.href],
    env: { ...process.env, LORAKIT_THREADS: '1' },
  });
}
