/**
 * A worker thread running a TypeScript module, with native kernels on one
 * thread each: the workers themselves are the parallelism.
 *
 *   const worker = typeScriptWorker(new URL('./merge-worker.ts', import.meta.url));
 *
 * NOTE: from source, lorakit is TypeScript run by tsx; worker threads do not
 * inherit its loader, so each one starts in worker-bootstrap.mjs, which
 * registers it. In the `lora` command's bundle (packages/cli/bundle.ts) this
 * file is JavaScript, and each worker module a JavaScript entry beside it.
 */
import { Worker } from 'node:worker_threads';

const bundled = !import.meta.url.endsWith('.ts');

export function typeScriptWorker(module: URL, { workerData }: { workerData?: unknown } = {}): Worker {
  const env = { ...process.env, LORAKIT_THREADS: '1' };
  if (bundled) return new Worker(new URL(module.href.replace(/\.ts$/, '.mjs')), { env, workerData });
  return new Worker(new URL('./worker-bootstrap.mjs', import.meta.url), { argv: [module.href], env, workerData });
}
