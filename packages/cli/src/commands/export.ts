/**
 * lora export <model> [--adapter DIR ...] --format onnx --out DIR [--dtype fp32|q4] [--keep-lora]:
 * a folder transformers.js runs, the adapters folded into the weights (or one kept as its low-rank products).
 */
import { AutoModelForCausalLM, exportOnnx, type CausalLM, type OnnxDtype } from '@lorakit/models';
import { PeftModel } from '@lorakit/adapters';
import { UsageError } from '../errors.ts';
import { checkOutFlag, stopCleanlyOnSignals } from '../output.ts';

export interface ExportArgs {
  model: string;
  adapter: string[];
  format: 'onnx';
  out: string;
  dtype: OnnxDtype;
  keepLora: boolean;
  json: boolean;
}

const warn = (message: string) => process.stderr.write(`warning: ${message}\n`);

/** The base model with the adapters folded in, or with the one adapter kept as LoRA layers. */
async function modelToExport(args: ExportArgs): Promise<CausalLM> {
  const base = await AutoModelForCausalLM.fromPretrained(args.model, { onWarning: warn });
  if (args.adapter.length === 0) return base;
  const names = args.adapter.map((_, i) => `adapter_${i}`);
  const peft = await PeftModel.fromPretrained(base, args.adapter[0], { adapterName: names[0], onWarning: warn });
  for (let i = 1; i < args.adapter.length; i++) await peft.loadAdapter(args.adapter[i], names[i], { onWarning: warn });
  return args.keepLora ? peft.model : peft.mergeAndUnload({ adapterNames: names });
}

export async function exportModel(args: ExportArgs): Promise<void> {
  if (args.keepLora && args.adapter.length !== 1) throw new UsageError(`--keep-lora keeps one adapter as LoRA layers; ${args.adapter.length === 0 ? 'give it with --adapter' : `${args.adapter.length} were given (fold several in by leaving --keep-lora out)`}`);
  await checkOutFlag(args.out, [args.model, ...args.adapter]);
  stopCleanlyOnSignals(args.out);
  const started = performance.now();
  const model = await modelToExport(args);
  const stage = (line: string) => (args.json ? undefined : process.stderr.write(`${line}\n`));
  const result = await exportOnnx(model, args.out, { source: args.model, dtype: args.dtype, onStage: stage });
  const seconds = (performance.now() - started) / 1000;
  if (args.json) {
    process.stdout.write(`${JSON.stringify({ out: args.out, format: args.format, dtype: args.dtype, files: result.files, nodes: result.nodes, seconds: Number(seconds.toFixed(2)) }, null, 2)}\n`);
    return;
  }
  process.stdout.write(`exported ${args.dtype} ONNX (${result.nodes} nodes) in ${seconds.toFixed(1)} s to ${args.out} (${result.files.join(', ')})\n`);
}
