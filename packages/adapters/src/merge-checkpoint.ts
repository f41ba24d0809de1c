/**
 * The streaming merge behind `lora merge`: adapters folded into a model's
 * checkpoint one tensor at a time, so memory stays near the largest tensor
 * plus the adapters, whatever the model's size.
 *
 *   await mergeCheckpoint({ model: 'models/base', adapters: [{ dir: 'out/adapter' }], out: 'models/merged', dtype: 'BF16' });
 *
 *   W' = W + Σ wᵢ·sᵢ·Bᵢ·Aᵢ   (transposed for fan_in_fan_out layers and embeddings: W_embed += (s·B·A)ᵀ)
 *   DoRA: W' = m ⊙ (W + s·B·A) / ‖W + s·B·A‖_row
 *   modules_to_save and trained biases replace the base tensors; an embedding
 *   base weight saved with the adapter replaces it before its delta is added,
 *   as PEFT loads it into the base layer before merging.
 * With tie_word_embeddings the checkpoint stores the embedding once and no
 * lm_head.weight: the merged embedding is what the merged model's head reads,
 * as after PEFT's merge_and_unload (the shared tensor changes, so the head does).
 * The output keeps the checkpoint's own keys; an adapter names modules as the
 * model does, matched through the layout's key convention (a gemma3 checkpoint's
 * language_model.model.* holds model.language_model.*), and what the model
 * leaves alone (Gemma 3's vision tower and projector) is copied through as it is
 * stored (converted only by `dtype`), so the output still loads in transformers.
 * The checkpoint and the adapters are first checked as loading checks them
 * (checkCheckpoint against the config's weight layout, readAdapterFor), with
 * the same errors, before anything is written. Everything is written into a
 * temporary folder beside the output, renamed into place at the end; the
 * inputs are only read.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Tensor } from '@lorakit/core';
import { Checkpoint, FileFormatError, bytesToTensor, INDEX_FILE, SafetensorsStream, checkOutputFolder, writeFolderAtomically, indexJson, planShards, shardFileName, tensorToBytes, SAFETENSORS_DTYPES, type SafetensorsDtype, readJsonFile, stringifyJson, quote } from '@lorakit/core/io';
import type { LowRankDelta } from '@lorakit/core/wasm';
import { checkCheckpoint, copySideFiles, loadConfig, weightLayout } from '@lorakit/models';
import { Bf16MergePool } from './bf16-merge-pool.ts';
import { addLowRank } from './merge-rows.ts';
import { doraRescale } from './dora.ts';
import { readAdapterFor } from './adapter-io.ts';
import type { LoraConfig } from './config.ts';
import { LORA_KEY, factorLocals, moduleOfLoraKey, savedKeyOf } from './peft-format.ts';

export interface MergeOptions {
  model: string;
  adapters: Array<{ dir: string; weight?: number }>;
  out: string;
  /** Output float dtype (default: the dtype of the model's weights). */
  dtype?: 'BF16' | 'F16' | 'F32';
  maxShardSize?: number;
  onProgress?: (done: number, total: number) => void;
  onWarning?: (message: string) => void;
}

export interface MergeResult {
  files: string[];
  mergedTensors: number;
  totalTensors: number;
}

interface LoadedAdapter {
  config: LoraConfig;
  tensors: Map<string, Tensor>;
  weight: number;
  dir: string;
  weightsFile: string;
}

/** One adapter's B·A for one module: lora_A [r, in] and lora_B [out, r] as plain arrays, factor = wᵢ·sᵢ. */
interface ModuleDelta extends LowRankDelta {
  adapter: LoadedAdapter;
  magnitude: Tensor | undefined;
  /** the weight is stored [in, out] (GPT-2's Conv1D: PEFT's fan_in_fan_out; an Embedding's [num, dim]), whatever the adapter's config says */
  transposed: boolean;
}

/** One adapter's factors for a module, under a linear layer's keys or an embedding's. */
function factorsOf(adapter: LoadedAdapter, module: string): { a: Tensor; b: Tensor; key: string } | undefined {
  for (const embedding of [false, true]) {
    const { a, b } = factorLocals(embedding);
    const [ta, tb] = [adapter.tensors.get(savedKeyOf(module, a)), adapter.tensors.get(savedKeyOf(module, b))];
    if (ta && tb) return { a: ta, b: tb, key: savedKeyOf(module, a) };
  }
  return undefined;
}

/** Each adapter's B·A for the module that owns the model tensor `key`, checked against the weight's shape. */
function moduleDeltas(key: string, shape: number[], adapters: LoadedAdapter[], transposed: boolean): ModuleDelta[] {
  const module = key.slice(0, -'.weight'.length);
  const deltas: ModuleDelta[] = [];
  for (const adapter of adapters) {
    const factors = factorsOf(adapter, module);
    if (!factors) continue;
    const { a, b } = factors;
    const expected = transposed ? [a.shape[1], b.shape[0]] : [b.shape[0], a.shape[1]];
    if (expected.join() !== shape.join()) { // readAdapterFor and checkCheckpoint rule this out; kept so that no worker ever sees it
      throw new FileFormatError('AdapterKeyMismatch', adapter.weightsFile, `${quote(factors.key)} ${quote(a.shape)} and its B ${quote(b.shape)} give a delta ${quote(expected)} that does not fit ${quote(key)} ${quote(shape)}`);
    }
    const factor = adapter.weight * adapter.config.scaling(module);
    deltas.push({ adapter, a: a.values as Float32Array, b: b.values as Float32Array, r: a.shape[0], factor, transposed, magnitude: adapter.tensors.get(savedKeyOf(module, 'lora_magnitude_vector')) });
  }
  return deltas;
}

/** Whether any adapter changes this base weight (a model tensor's name; null: a stored tensor the model leaves alone). */
function isAdapted(key: string | null, adapters: LoadedAdapter[]): boolean {
  if (key === null) return false;
  const module = key.slice(0, -'.weight'.length);
  return key.endsWith('.weight') && adapters.some((a) => factorsOf(a, module) !== undefined);
}

/**
 * W + Σ factor·B·A, then DoRA's rescaling if the adapter has one, with the
 * arithmetic LoraLinear merges with (merge-rows.ts, dora.ts), on the weight
 * as [out, in] (a fan_in_fan_out weight [in, out] is transposed there and back).
 */
function mergeWeight(weight: Tensor, deltas: ModuleDelta[]): Tensor {
  const transposed = deltas.some((d) => d.transposed);
  const dense = (transposed ? weight.transpose(0, 1) : weight).to('float32');
  const w = dense === weight ? (weight.values.slice() as Float32Array) : (dense.values as Float32Array); // never into an adapter's own tensor
  for (const delta of deltas) {
    addLowRank(w, delta);
    if (delta.magnitude) doraRescale(w, delta.magnitude.values as Float32Array);
  }
  const merged = new Tensor(w, dense.shape);
  return transposed ? merged.transpose(0, 1) : merged;
}

/** Adapter tensors that replace base tensors (modules_to_save, trained biases), by the base tensor's stored key. */
function replacements(adapters: LoadedAdapter[], stored: Map<string, string>): Map<string, Tensor> {
  const result = new Map<string, Tensor>();
  for (const adapter of adapters) {
    for (const [key, tensor] of adapter.tensors) {
      if (LORA_KEY.test(key)) continue;
      const name = key.replace(/^base_model\.model\./, '').replace('.base_layer.', '.');
      result.set(stored.get(name)!, tensor); // checkAdapters made sure the checkpoint stores it
    }
  }
  return result;
}

/**
 * What the checks against the layout leave: a base tensor the checkpoint does
 * not store (a tied lm_head), and DoRA weighted with other adapters.
 */
function checkAdapters(adapters: LoadedAdapter[], checkpoint: Checkpoint, stored: Map<string, string>): void {
  const missing: string[] = [];
  for (const adapter of adapters) {
    for (const key of adapter.tensors.keys()) {
      const module = moduleOfLoraKey(key);
      const base = LORA_KEY.test(key) ? `${module}.weight` : module.replace('.base_layer.', '.');
      if (!stored.has(base)) missing.push(`${adapter.dir}: ${key} (no ${base} in the model)`);
    }
    if (adapter.config.useDora && adapters.length > 1) throw new FileFormatError('UnsupportedAdapterFeature', adapter.dir, 'a DoRA adapter merges alone, not weighted with others');
  }
  if (missing.length > 0) throw new FileFormatError('AdapterKeyMismatch', checkpoint.dir, `the adapters do not fit this model:\n${missing.slice(0, 8).map((m) => `  ${m}`).join('\n')}${missing.length > 8 ? `\n  ... and ${missing.length - 8} more` : ''}`);
}

function outputDtype(checkpoint: Checkpoint, requested: MergeOptions['dtype']): SafetensorsDtype {
  if (requested) return requested;
  const floats = checkpoint.names().map((n) => checkpoint.entry(n).dtype).filter((d) => ['F32', 'BF16', 'F16'].includes(d));
  return (floats[0] as SafetensorsDtype | undefined) ?? 'F32';
}

interface MergeInputs {
  checkpoint: Checkpoint;
  adapters: LoadedAdapter[];
  /** each adapted base weight's deltas, checked before any work starts */
  deltas: Map<string, ModuleDelta[]>;
  /** adapter tensors that replace base tensors, by base key */
  replaced: Map<string, Tensor>;
  pool: Bf16MergePool;
}

/**
 * The deltas for a base weight the adapters change, and whether the worker
 * pool merges it: the common case, a bf16 weight staying bf16 without DoRA
 * or fan_in_fan_out.
 */
function mergeOf(name: string, dtype: SafetensorsDtype, inputs: MergeInputs): { deltas: ModuleDelta[]; onPool: boolean } | undefined {
  const deltas = inputs.deltas.get(name);
  if (deltas === undefined) return undefined;
  const stored = inputs.checkpoint.entry(name);
  const simple = deltas.every((d) => !d.magnitude && !d.transposed);
  return { deltas, onPool: simple && stored.dtype === 'BF16' && dtype === 'BF16' && !inputs.replaced.has(name) };
}

/**
 * What outputBytes needs for one tensor: its stored bytes (in the pool's
 * shared memory for a pool merge; none for a replaced tensor or one copied as
 * it is) and the merge, if any.
 */
interface Source {
  name: string;
  dtype: SafetensorsDtype;
  slot: number;
  bytes: Uint8Array | undefined;
  merge: ReturnType<typeof mergeOf>;
}

async function readSource(name: string, dtype: SafetensorsDtype, slot: number, inputs: MergeInputs): Promise<Source> {
  if (inputs.replaced.has(name)) return { name, dtype, slot, bytes: undefined, merge: mergeOf(name, dtype, inputs) };
  const stored = inputs.checkpoint.entry(name);
  const merge = mergeOf(name, dtype, inputs);
  const copied = !merge && dtype === stored.dtype;
  const bytes = copied ? undefined : await inputs.checkpoint.readBytes(name, merge?.onPool ? inputs.pool.input(slot, stored.end - stored.begin) : undefined);
  return { name, dtype, slot, bytes, merge };
}

/**
 * One output tensor's bytes: an adapter's replacement, the merged weight, the
 * base tensor converted, or the base tensor as it is, read a piece at a time
 * as it is written (a tensor like the embeddings need never be held whole).
 */
async function outputBytes({ name, dtype, slot, bytes, merge }: Source, inputs: MergeInputs): Promise<Uint8Array | AsyncIterable<Uint8Array>> {
  const replacement = inputs.replaced.get(name);
  if (replacement !== undefined) return tensorToBytes(merge ? mergeWeight(replacement, merge.deltas) : replacement, dtype);
  const stored = inputs.checkpoint.entry(name);
  if (merge?.onPool) return inputs.pool.merge(slot, stored.shape as [number, number], merge.deltas);
  if (bytes === undefined) return inputs.checkpoint.readChunks(name);
  const tensor = bytesToTensor(bytes, stored.dtype, stored.shape);
  return tensorToBytes(merge ? mergeWeight(tensor, merge.deltas) : tensor, dtype);
}

/**
 * A shard's tensors through three stages: read, merge, write. Reads and
 * writes take the tensors in order; a merge starts once its tensor is read
 * (the pool's workers take them in turn). Up to one tensor per pool slot is
 * between the start of its read and the end of its write, so the disk keeps
 * writing while the next tensors are read and merged.
 */
async function streamShard(shard: string[], dtypeOf: (name: string) => SafetensorsDtype, stream: SafetensorsStream, inputs: MergeInputs, onTensor: () => void): Promise<void> {
  const { slots } = inputs.pool;
  const writes: Promise<void>[] = [];
  // every stage of every tensor, settled: what a failure waits for before the caller cleans up (holding no bytes)
  const stages: Promise<void>[] = [];
  let read = Promise.resolve();
  try {
    for (const [i, name] of shard.entries()) {
      if (i >= slots) await writes[i - slots]; // tensor i takes the slot of tensor i - slots
      const source = read.then(() => readSource(name, dtypeOf(name), i % slots, inputs));
      const bytes = source.then((s) => outputBytes(s, inputs));
      const written = Promise.all([bytes, writes.at(-1)]).then(([b]) => stream.write(name, b)).then(onTensor);
      read = source.then(() => {});
      writes.push(written);
      for (const stage of [source, bytes, written]) stages.push(stage.then(() => {}, () => {}));
    }
    await writes.at(-1);
  } finally {
    await Promise.all(stages);
  }
}

/**
 * Tensors in flight (the pool's slots): up to eight, two at least, and as
 * many as fit in about 1 GB given the largest tensor held whole (its bytes in
 * and out), since only untouched tensors are copied through in pieces.
 */
function tensorsInFlight(largestHeldBytes: number): number {
  return Math.max(2, Math.min(8, Math.floor(1e9 / largestHeldBytes)));
}

export async function mergeCheckpoint({ model, adapters: adapterDirs, out, dtype, maxShardSize = 5e9, onProgress, onWarning = (m) => process.emitWarning(m) }: MergeOptions): Promise<MergeResult> {
  if (adapterDirs.length === 0) throw new Error('mergeCheckpoint: no adapter given');
  const config = await loadConfig(model);
  if ((config as { quantization_config?: unknown }).quantization_config) {
    throw new FileFormatError('QuantizedBase', model, 'holds 4-bit weights; merge into the original 16-bit model, or in the library with mergeAndUnload({ dequantize: true })');
  }
  await checkOutputFolder(out, [model, ...adapterDirs.map((a) => a.dir)]);
  const checkpoint = await Checkpoint.open(model);
  let pool: Bf16MergePool | undefined;
  try {
    // everything is checked as loading checks it (fromPretrained, PeftModel.fromPretrained) before any work starts
    checkpoint.warnings.forEach(onWarning);
    const layout = weightLayout(config);
    const stored = checkCheckpoint(checkpoint, layout);
    const target = outputDtype(checkpoint, dtype);
    const adapters: LoadedAdapter[] = [];
    for (const { dir, weight = 1 } of adapterDirs) adapters.push({ ...(await readAdapterFor(layout, dir, onWarning)), weight, dir });
    checkAdapters(adapters, checkpoint, stored);
    const names = checkpoint.names(); // stored keys, which the output keeps
    const nameOf = (key: string) => layout.keys.nameOf(key);
    const transposed = new Set(layout.modules.filter((m) => m.type === 'Conv1D' || m.type === 'Embedding').map((m) => `${m.name}.weight`));
    const deltas = new Map(names.filter((n) => isAdapted(nameOf(n), adapters)).map((n) => [n, moduleDeltas(nameOf(n)!, checkpoint.entry(n).shape, adapters, transposed.has(nameOf(n)!))]));
    const dtypeOf = (name: string) => (['F32', 'BF16', 'F16', 'F64'].includes(checkpoint.entry(name).dtype) ? target : checkpoint.entry(name).dtype);
    const sizes = names.map((n) => [n, checkpoint.entry(n).shape.reduce((a, b) => a * b, 1) * SAFETENSORS_DTYPES[dtypeOf(n)]] as [string, number]);
    const held = sizes.filter(([n]) => deltas.has(n) || dtypeOf(n) !== checkpoint.entry(n).dtype).map(([n, out]) => checkpoint.entry(n).end - checkpoint.entry(n).begin + out);
    pool = new Bf16MergePool({ slots: tensorsInFlight(Math.max(1, ...held)) });
    if (target === 'BF16') pool.start();
    const replaced = replacements(adapters, stored);
    const inputs: MergeInputs = { checkpoint, adapters, deltas, replaced, pool };
    const plan = planShards(sizes, maxShardSize);
    const files: string[] = [];
    let done = 0;
    await writeFolderAtomically(out, async (dir) => {
      for (const [k, shard] of plan.entries()) {
        const file = shardFileName(k, plan.length);
        const stream = await SafetensorsStream.create(join(dir, file), shard.map((name) => ({ name, dtype: dtypeOf(name), shape: checkpoint.entry(name).shape })));
        await streamShard(shard, dtypeOf, stream, inputs, () => onProgress?.(++done, names.length));
        await stream.close();
        files.push(file);
      }
      if (plan.length > 1) {
        await writeFile(join(dir, INDEX_FILE), indexJson(plan, new Map(sizes)));
        files.push(INDEX_FILE);
      }
      const rawConfig = await readJsonFile(join(model, 'config.json'), 'model config', { exact: true }); // numbers kept as written: transformers refuses 3 for a float field's 3.0
      const torchDtype = { F32: 'float32', BF16: 'bfloat16', F16: 'float16' }[target as 'F32'] ?? 'float32';
      await writeFile(join(dir, 'config.json'), `${stringifyJson({ ...rawConfig, dtype: torchDtype, torch_dtype: torchDtype })}\n`);
      files.push(...(await copySideFiles(model, dir)), 'config.json');
    });
    return { files, mergedTensors: deltas.size, totalTensors: names.length };
  } finally {
    await Promise.all([checkpoint.close(), pool?.close()]);
  }
}
