/** lora quantize <model> --out DIR: a bitsandbytes-format 4-bit checkpoint (NF4 or FP4). */
import { AutoModelForCausalLM, copySideFiles, saveModel } from '@lorakit/models';
import { quantizeModel } from '@lorakit/adapters';
import { UsageError, byteSize } from '../errors.ts';
import { writeFolderAtomically } from '@lorakit/core/io';
import { checkOutFlag, stopCleanlyOnSignals } from '../output.ts';

export interface QuantizeArgs {
  model: string;
  out: string;
  type: 'nf4' | 'fp4';
  doubleQuant: boolean;
  blockSize: number;
  maxShardSize: string;
  json: boolean;
}

export async function quantize(args: QuantizeArgs): Promise<void> {
  if (![64, 128, 256, 512, 1024, 2048, 4096].includes(args.blockSize)) throw new UsageError(`--block-size must be one of 64, 128, ..., 4096 (bitsandbytes' sizes), got ${args.blockSize}`);
  const maxShardSize = byteSize(args.maxShardSize);
  await checkOutFlag(args.out, [args.model]);
  stopCleanlyOnSignals(args.out);
  const started = performance.now();
  const model = await AutoModelForCausalLM.fromPretrained(args.model, { onWarning: () => {} });
  const quantized = await quantizeModel(model, { quantType: args.type, blockSize: args.blockSize, doubleQuant: args.doubleQuant });
  let files: string[] = [];
  await writeFolderAtomically(args.out, async (dir) => {
    files = [...(await saveModel(model, dir, { dtype: 'BF16', maxShardSize })), ...(await copySideFiles(args.model, dir))];
  });
  const seconds = (performance.now() - started) / 1000;
  if (args.json) {
    process.stdout.write(`${JSON.stringify({ out: args.out, quantized_modules: quantized, files, seconds: Number(seconds.toFixed(2)) }, null, 2)}\n`);
    return;
  }
  process.stdout.write(`quantized ${quantized.length} linear layers to ${args.type}${args.doubleQuant ? ' with double quantization' : ''} (block ${args.blockSize}) in ${seconds.toFixed(1)} s into ${args.out}\n`);
}
