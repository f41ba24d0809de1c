/**
 * lora export <model> [--adapter DIR ...] --format onnx|gguf --out DIR [--dtype ...] [--keep-lora] [--merge]
 *
 *   onnx  a folder transformers.js runs: the adapters folded into the weights (--keep-lora: one kept as its
 *         low-rank products); --dtype fp32 or q4
 *   gguf  model.gguf for llama.cpp, ollama and node-llama-cpp, and beside it one GGUF per adapter, applied at run
 *         time (--merge: the adapters folded into model.gguf instead); --dtype f32, f16, bf16 or q8_0; a Modelfile
 *         for ollama
 */
import { basename, join } from 'node:path';
import { writeFile } from 'node:fs/promises';
import { AutoModelForCausalLM, exportOnnx, writeGgufModel, type CausalLM, type GgufDtype, type OnnxDtype } from '@lorakit/models';
import { PeftModel, writeGgufAdapter } from '@lorakit/adapters';
import { writeFolderAtomically } from '@lorakit/core/io';
import { UsageError } from '../errors.ts';
import { checkOutFlag, stopCleanlyOnSignals } from '../output.ts';

export interface ExportArgs {
  model: string;
  adapter: string[];
  format: 'onnx' | 'gguf';
  out: string;
  dtype?: string;
  keepLora: boolean;
  merge: boolean;
  json: boolean;
}

const DTYPES = { onnx: ['fp32', 'q4'], gguf: ['f32', 'f16', 'bf16', 'q8_0'] } as const;

const warn = (message: string) => process.stderr.write(`warning: ${message}\n`);

/** The flags each format takes, checked before any work. */
function checkFlags(args: ExportArgs): void {
  const dtypes: readonly string[] = DTYPES[args.format];
  if (args.dtype !== undefined && !dtypes.includes(args.dtype)) throw new UsageError(`--dtype ${args.dtype} is not a ${args.format} dtype; --format ${args.format} takes ${dtypes.join(', ')}`);
  if (args.format === 'gguf' && args.keepLora) throw new UsageError('--keep-lora is for --format onnx; a GGUF export keeps each adapter in its own file unless --merge is given');
  if (args.format === 'onnx' && args.merge) throw new UsageError('--merge is for --format gguf; an ONNX export folds the adapters in unless --keep-lora is given');
  if (args.merge && args.adapter.length === 0) throw new UsageError('--merge folds adapters into the model: give them with --adapter');
  if (args.keepLora && args.adapter.length !== 1) throw new UsageError(`--keep-lora keeps one adapter as LoRA layers; ${args.adapter.length === 0 ? 'give it with --adapter' : `${args.adapter.length} were given (fold several in by leaving --keep-lora out)`}`);
}

const adapterNames = (args: ExportArgs) => args.adapter.map((_, i) => `adapter_${i}`);

/** The base model with every --adapter loaded, each by its name (adapter_0, ...). */
async function withAdapters(base: CausalLM, args: ExportArgs): Promise<PeftModel> {
  const names = adapterNames(args);
  const peft = await PeftModel.fromPretrained(base, args.adapter[0], { adapterName: names[0], onWarning: warn });
  for (let i = 1; i < args.adapter.length; i++) await peft.loadAdapter(args.adapter[i], names[i], { onWarning: warn });
  return peft;
}

/** The base model with the adapters folded in, or with the one adapter kept as LoRA layers. */
async function foldedOrKept(args: ExportArgs): Promise<CausalLM> {
  const base = await AutoModelForCausalLM.fromPretrained(args.model, { onWarning: warn });
  if (args.adapter.length === 0) return base;
  const peft = await withAdapters(base, args);
  return args.keepLora ? peft.model : peft.mergeAndUnload({ adapterNames: adapterNames(args) });
}

/** Each adapter's GGUF file name: its folder's name, made unique. */
function adapterFiles(args: ExportArgs): string[] {
  const taken = new Set(['model']);
  return args.adapter.map((dir) => {
    let name = basename(dir.replace(/[/\\]+$/, '')) || 'adapter';
    for (let i = 1; taken.has(name); i++) name = `${basename(dir)}_${i}`;
    taken.add(name);
    return `${name}.gguf`;
  });
}

/** model.gguf, then (no --merge) each adapter's GGUF, and a Modelfile for ollama; returns the files written. */
async function exportGguf(args: ExportArgs, stage: (line: string) => void): Promise<string[]> {
  const dtype = (args.dtype ?? 'f32') as GgufDtype;
  const files = ['model.gguf'];
  const base = await AutoModelForCausalLM.fromPretrained(args.model, { onWarning: warn });
  const apart = args.adapter.length > 0 && !args.merge;
  await writeFolderAtomically(args.out, async (dir) => {
    const model = args.merge ? (await withAdapters(base, args)).mergeAndUnload({ adapterNames: adapterNames(args) }) : base;
    stage(`writing model.gguf (${dtype})`);
    await writeGgufModel(model, join(dir, 'model.gguf'), { source: args.model, dtype, onWarning: warn });
    if (apart) {
      const peft = await withAdapters(base, args);
      adapterFiles(args).forEach((file, i) => {
        stage(`writing ${file}`);
        writeGgufAdapter(peft, adapterNames(args)[i], join(dir, file));
        files.push(file);
      });
    }
    const adapters = files.slice(1).map((file) => `ADAPTER ./${file}\n`).join('');
    await writeFile(join(dir, 'Modelfile'), `FROM ./model.gguf\n${adapters}`);
    files.push('Modelfile');
  });
  return files;
}

export async function exportModel(args: ExportArgs): Promise<void> {
  checkFlags(args);
  await checkOutFlag(args.out, [args.model, ...args.adapter]);
  stopCleanlyOnSignals(args.out);
  const started = performance.now();
  const stage = (line: string) => (args.json ? undefined : process.stderr.write(`${line}\n`));
  let files: string[];
  let detail: string;
  if (args.format === 'gguf') {
    files = await exportGguf(args, stage);
    detail = `${args.dtype ?? 'f32'} GGUF`;
  } else {
    const dtype = (args.dtype ?? 'fp32') as OnnxDtype;
    const result = await exportOnnx(await foldedOrKept(args), args.out, { source: args.model, dtype, onStage: stage });
    files = result.files;
    detail = `${dtype} ONNX (${result.nodes} nodes)`;
  }
  const seconds = (performance.now() - started) / 1000;
  if (args.json) {
    process.stdout.write(`${JSON.stringify({ out: args.out, format: args.format, dtype: args.dtype ?? DTYPES[args.format][0], files, seconds: Number(seconds.toFixed(2)) }, null, 2)}\n`);
    return;
  }
  process.stdout.write(`exported ${detail} in ${seconds.toFixed(1)} s to ${args.out} (${files.join(', ')})\n`);
}
