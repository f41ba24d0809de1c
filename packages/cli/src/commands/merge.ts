/** lora merge <model> --adapter DIR [--adapter DIR --weight W ...] --out DIR: a streaming merge into a new checkpoint. */
import { mergeCheckpoint } from '@lorakit/adapters';
import { UsageError, byteSize } from '../errors.ts';
import { checkOutFlag, stopCleanlyOnSignals } from '../output.ts';
import { stepProgress } from '../progress.ts';

export interface MergeArgs {
  model: string;
  adapter: string[];
  /** Finite numbers: main.ts checks each --weight. */
  weight: number[];
  out: string;
  dtype?: 'bf16' | 'f16' | 'f32';
  maxShardSize: string;
  json: boolean;
}

/** One weight per adapter, 1 for all when none is given. */
function weights(args: MergeArgs): number[] {
  if (args.weight.length === 0) return args.adapter.map(() => 1);
  if (args.weight.length !== args.adapter.length) throw new UsageError(`--weight was given ${args.weight.length} times for ${args.adapter.length} --adapter folders; give one weight per adapter`);
  return args.weight;
}

export async function merge(args: MergeArgs): Promise<void> {
  if (args.adapter.length === 0) throw new UsageError('lora merge needs at least one --adapter DIR');
  const adapterWeights = weights(args);
  const maxShardSize = byteSize(args.maxShardSize);
  await checkOutFlag(args.out, [args.model, ...args.adapter]);
  stopCleanlyOnSignals(args.out);
  const started = performance.now();
  const progress = stepProgress('merge', 'tensors');
  const result = await mergeCheckpoint({
    model: args.model, out: args.out, maxShardSize,
    adapters: args.adapter.map((dir, i) => ({ dir, weight: adapterWeights[i] })),
    dtype: args.dtype?.toUpperCase() as 'BF16' | 'F16' | 'F32' | undefined,
    onProgress: progress.update,
    onWarning: (m) => process.stderr.write(`warning: ${m}\n`),
  }).finally(progress.stop);
  const seconds = (performance.now() - started) / 1000;
  if (args.json) {
    process.stdout.write(`${JSON.stringify({ out: args.out, files: result.files, merged_tensors: result.mergedTensors, total_tensors: result.totalTensors, seconds: Number(seconds.toFixed(2)) }, null, 2)}\n`);
    return;
  }
  process.stdout.write(`merged ${result.mergedTensors} of ${result.totalTensors} tensors in ${seconds.toFixed(1)} s into ${args.out} (${result.files.join(', ')})\n`);
}
