/**
 * Saving and loading a PeftModel's adapters. Loading is strict where PEFT
 * only warns: every adapter tensor of the model must be in the file, every
 * tensor in the file must belong to the model, shapes must agree and values
 * must be finite — an adapter that silently does nothing is an error.
 * checkAdapterTensors is that check, for a loaded model (adapterStateDict)
 * and for a model's layout alone (readAdapterFor, used by the merge).
 */
import { join } from 'node:path';
import { noGrad, type Tensor } from '@lorakit/core';
import { formatShape } from '@lorakit/core/ops';
import { FileFormatError, quote } from '@lorakit/core/io';
import { Embedding, Linear } from '@lorakit/core/nn';
import { checkpointKeys, type CheckpointKeys, type WeightLayout } from '@lorakit/models';
import type { PeftModel } from './peft-model.ts';
import { expectedAdapterTensors } from './adapter-layout.ts';
import { configToJson, moduleOfLoraKey, readAdapter, savedKey, savedKeyOf, savesEmbeddingBase, writeAdapter, type AdapterFiles } from './peft-format.ts';
import type { LoraConfig } from './config.ts';
import { isLoraLayer } from './lora-layers.ts';
import { isEmbeddingLayer } from './targets.ts';

/** The adapter's tensors under their saved (PEFT) keys. */
export function adapterStateDict(peft: PeftModel, adapter: string): Map<string, Tensor> {
  const config = peft.peftConfig.get(adapter);
  if (config === undefined) throw new Error(`no adapter named "${adapter}"`);
  const bases = embeddingBaseKeys(peft, adapter, config);
  const result = new Map<string, Tensor>();
  for (const [key, tensor] of peft.stateDict()) {
    const saved = bases.has(key) ? key : savedKey(key, adapter, config.bias);
    if (saved !== null) result.set(saved, tensor);
  }
  return result;
}

/**
 * The base-layer keys PEFT saves with the adapter when it targets embeddings
 * (savesEmbeddingBase): those of the input embedding (the first embedding of
 * the tree, embed_tokens or wte) and of the output head, each when it holds
 * this adapter's LoRA.
 */
function embeddingBaseKeys(peft: PeftModel, adapter: string, config: LoraConfig): Set<string> {
  const model = peft.model;
  const named = model.namedModules();
  if (!savesEmbeddingBase(config.targetModules, named.map(([n]) => n))) return new Set();
  const input = named.find(([, m]) => isEmbeddingLayer(m))?.[0];
  const keys = new Set<string>();
  for (const name of [input, model.outputEmbeddingsName()]) {
    const layer = name === undefined ? undefined : model.getSubmodule(name);
    if (!layer || !isLoraLayer(layer) || !layer.settings.has(adapter) || !(layer.base_layer instanceof Linear || layer.base_layer instanceof Embedding)) continue;
    for (const [local] of layer.base_layer.ownTensors()) keys.add(savedKeyOf(name!, `base_layer.${local}`));
  }
  return keys;
}

/** PEFT's layout: the default adapter in `dir`, any other in `dir/<name>`. */
export async function saveAdapters(peft: PeftModel, dir: string, adapters: string[]): Promise<void> {
  for (const adapter of adapters) {
    const config = peft.peftConfig.get(adapter)!;
    const target = adapter === 'default' ? dir : join(dir, adapter);
    await writeAdapter(target, configToJson(config, config.targetModules ?? []), adapterStateDict(peft, adapter));
  }
}

const LISTED = 8;
const show = (keys: string[]) => keys.slice(0, LISTED).map((k) => `    ${quote(k)}`).join('\n') + (keys.length > LISTED ? `\n    ... and ${keys.length - LISTED} more` : '');

/**
 * Whether the file's tensors are exactly `expected` (saved key -> shape): one
 * AdapterKeyMismatch listing every missing, unexpected and mis-shaped tensor,
 * NonFiniteAdapter for NaN or Inf, a warning when every lora_B is zero. What
 * loading onto a model and the streaming merge both check.
 */
export function checkAdapterTensors(files: AdapterFiles, expected: Map<string, readonly number[]>, warn: (message: string) => void, keys?: CheckpointKeys): void {
  // PEFT's save_pretrained(save_embedding_layers=False) leaves out the base weights of targeted embeddings: they may be absent
  const missing = [...expected.keys()].filter((k) => !files.tensors.has(k) && !k.endsWith('.base_layer.weight'));
  const unexpected = [...files.tensors.keys()].filter((k) => !expected.has(k));
  const mismatched = [...expected].flatMap(([k, shape]) => {
    const found = files.tensors.get(k);
    return found && found.shape.join() !== shape.join() ? [`${k}: file ${formatShape(found.shape)}, model ${formatShape(shape)}`] : [];
  });
  if (missing.length + unexpected.length + mismatched.length > 0) {
    const none = missing.length === expected.size && unexpected.length === files.tensors.size;
    const lead = none ? `none of its ${files.tensors.size} tensors fit this model (is it for another model, or saved with other key names?)` : 'does not fit this model';
    const parts = [
      missing.length ? `  adapter tensors the file lacks (${missing.length}):\n${show(missing)}` : '',
      unexpected.length ? `  tensors for modules the model does not have (${unexpected.length}):\n${show(unexpected)}` : '',
      mismatched.length ? `  shape mismatches (${mismatched.length}):\n${mismatched.slice(0, LISTED).map((m) => `    ${m}`).join('\n')}` : '',
      leftAloneHint(unexpected, keys),
    ].filter(Boolean);
    throw new FileFormatError('AdapterKeyMismatch', files.weightsFile, `${lead}:\n${parts.join('\n')}`);
  }
  for (const [key, tensor] of files.tensors) {
    if (!tensor.values.every(Number.isFinite)) throw new FileFormatError('NonFiniteAdapter', files.weightsFile, `${quote(key)} holds NaN or Inf`);
  }
  const bKeys = [...expected.keys()].filter((k) => k.endsWith('.lora_B.weight') || k.endsWith('.lora_embedding_B'));
  if (bKeys.length > 0 && bKeys.every((k) => files.tensors.get(k)!.values.every((v) => v === 0))) {
    warn(`${files.weightsFile}: every lora_B is zero, so this adapter does not change the model (was it trained?)`);
  }
}

/** Why an adapter's tensors for a part of the checkpoint lorakit leaves alone (Gemma 3's vision tower) have no module, when some are. */
function leftAloneHint(unexpected: string[], keys: CheckpointKeys | undefined): string {
  const leftAlone = unexpected.filter((k) => keys?.nameOf(`${moduleOfLoraKey(k)}.weight`) === null);
  return leftAlone.length === 0 ? '' : `  (${leftAlone.length} of them adapt ${keys!.leftAlone}: lorakit loads the language model only, so an adapter on them is not supported; train one on the language model's modules, e.g. target_modules ".*language_model.*\\.(q_proj|v_proj)")`;
}

/** Copy the file's tensors into the injected adapter, or throw one error listing every key that does not fit. */
export function loadAdapterTensors(peft: PeftModel, adapter: string, files: AdapterFiles, warn: (message: string) => void): void {
  const expected = adapterStateDict(peft, adapter);
  checkAdapterTensors(files, new Map([...expected].map(([k, t]) => [k, t.shape])), warn, checkpointKeys(peft.config.model_type));
  noGrad(() => {
    // a saved embedding base weight goes into the base layer (so a tied head gets it too), as PEFT's load_state_dict does
    for (const [key, target] of expected) if (files.tensors.has(key)) target.values.set(files.tensors.get(key)!.values);
  });
}

export async function readAdapterFiles(dir: string, warn: (message: string) => void): Promise<AdapterFiles> {
  return readAdapter(dir, warn);
}

/**
 * An adapter folder read and checked against a model's layout, with the
 * errors PeftModel.fromPretrained gives on that model, without building it.
 */
export async function readAdapterFor(layout: WeightLayout, dir: string, warn: (message: string) => void): Promise<AdapterFiles> {
  const files = await readAdapter(dir, warn);
  checkAdapterTensors(files, expectedAdapterTensors(layout, files.config), warn, layout.keys);
  return files;
}
