/**
 * Quantizing many weights on every core: a pool of worker threads (quantize-worker.ts),
 * one weight per job, largest first. An array that owns its whole buffer is
 * moved to its worker, not copied, and is empty afterwards (the caller is
 * replacing those weights); others are copied.
 */
import { availableParallelism } from 'node:os';
import { typeScriptWorker } from '../worker-thread.ts';
import type { QuantType } from './codebooks.ts';
import type { DoubleQuantized } from './double-quant.ts';

export interface QuantizedWeight {
  packed: Uint8Array;
  absmax: Float32Array;
  double: DoubleQuantized | null;
}

export async function quantizeParallel(weights: Float32Array[], type: QuantType, blockSize: number, doubleQuant: boolean, threads = availableParallelism()): Promise<QuantizedWeight[]> {
  const results = new Array<QuantizedWeight>(weights.length);
  const queue = weights.map((_, i) => i).sort((a, b) => weights[b].length - weights[a].length);
  const pool = Array.from({ length: Math.max(1, Math.min(threads, queue.length)) }, () => typeScriptWorker(new URL('./quantize-worker.ts', import.meta.url)));
  try {
    await Promise.all(pool.map((worker) => new Promise<void>((resolve, reject) => {
      const next = () => {
        const id = queue.shift();
        if (id === undefined) return resolve();
        const values = weights[id];
        const owned = values.byteOffset === 0 && values.byteLength === values.buffer.byteLength;
        worker.postMessage({ id, values, type, blockSize, doubleQuant }, owned ? [values.buffer as ArrayBuffer] : []);
      };
      worker.on('message', (r: QuantizedWeight & { id: number }) => {
        results[r.id] = { packed: r.packed, absmax: r.absmax, double: r.double };
        next();
      });
      worker.on('error', reject);
      next();
    })));
  } finally {
    await Promise.all(pool.map((w) => w.terminate()));
  }
  return results;
}
