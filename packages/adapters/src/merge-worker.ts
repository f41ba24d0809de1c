/**
 * A merge worker (Bf16MergePool): merges the rows it is given of a bf16
 * weight held in shared memory. Messages: { id, source, merged, inp, deltas }.
 * One adapter goes through the fused WebAssembly kernel; onnxruntime and the
 * rest of @lorakit/core load only for several adapters at once, or where that
 * kernel cannot run, so a worker starts in a fraction of the time.
 */
import { parentPort } from 'node:worker_threads';
import { bf16LoraMerge, type LowRankDelta } from '@lorakit/core/bf16-lora-merge';

interface Job {
  id: number;
  source: Uint16Array;
  merged: Uint16Array;
  inp: number;
  deltas: LowRankDelta[];
}

const kernel = bf16LoraMerge();

async function merge({ source, merged, inp, deltas }: Job): Promise<void> {
  if (kernel && deltas.length === 1) return kernel(source, merged, inp, deltas[0]);
  const { mergeBf16RowsInFloat32 } = await import('./merge-rows.ts');
  mergeBf16RowsInFloat32(source, merged, inp, deltas);
}

parentPort!.on('message', (job: Job) => {
  merge(job).then(
    () => parentPort!.postMessage({ id: job.id }),
    (error: Error) => parentPort!.postMessage({ id: job.id, error: error.message }),
  );
});
