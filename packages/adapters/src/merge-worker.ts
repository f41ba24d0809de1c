/**
 * A merge worker (Bf16MergePool): merges the rows it is given of a bf16
 * weight held in shared memory, in place in the pool's memory
 * ({ id, fromAt, toAt, rows, inp, delta }) or through copies
 * ({ id, source, merged, inp, deltas }). One adapter goes through the fused
 * WebAssembly kernel; onnxruntime and the rest of @lorakit/core load only for
 * several adapters at once, or where that kernel cannot run, so a worker
 * starts in a fraction of the time.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { Bf16LoraMerge, type LowRankDelta } from '@lorakit/core/wasm';

type Job = { id: number } & (
  | { fromAt: number; toAt: number; rows: number; inp: number; delta: LowRankDelta }
  | { source: Uint16Array; merged: Uint16Array; inp: number; deltas: LowRankDelta[] }
);

const kernel = Bf16LoraMerge.create((workerData as { memory: WebAssembly.Memory }).memory);

async function merge(job: Job): Promise<void> {
  if ('fromAt' in job) return kernel!.mergeInPlace(job.fromAt, job.toAt, job.rows, job.inp, job.delta); // the pool asks only where the kernel runs
  const { source, merged, inp, deltas } = job;
  if (kernel && deltas.length === 1) return kernel.merge(source, merged, inp, deltas[0]);
  const { mergeBf16RowsInFloat32 } = await import('./merge-rows.ts');
  mergeBf16RowsInFloat32(source, merged, inp, deltas);
}

parentPort!.on('message', (job: Job) => {
  merge(job).then(
    () => parentPort!.postMessage({ id: job.id }),
    (error: Error) => parentPort!.postMessage({ id: job.id, error: error.message }),
  );
});
