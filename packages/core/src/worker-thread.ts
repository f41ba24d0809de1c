/**
 * A worker thread running one of lorakit's modules, with native kernels on
 * one thread each: the workers themselves are the parallelism.
 *
 *   const worker = typeScriptWorker(new URL('./merge-worker.ts', import.meta.url));
 *
 * Built (dist/), the module is the JavaScript beside the caller. From source
 * (tests, under tsx), worker threads do not inherit tsx's loader, so each one
 * starts in worker-bootstrap.mjs, which registers it and loads the TypeScript.
 */
import { Worker } from 'node:worker_threads';

const fromSource = import.meta.url.endsWith('.ts');

export function typeScriptWorker(module: URL, { workerData }: { workerData?: unknown } = {}): Worker {
  const env = { ...process.env, LORAKIT_THREADS: '1' };
  if (!fromSource) return new Worker(new URL(module.href.replace(/\.ts$/, '.js')), { env, workerData });
  return new Worker(new URL('./worker-bootstrap.mjs', import.meta.url), { argv: [module.href], env, workerData });
}
