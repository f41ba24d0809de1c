/**
 * PEFT's file format, and only here: adapter_config.json and
 * adapter_model.safetensors, both directions.
 *
 *   adapter_config.json   PEFT's field names; "peft_type": "LORA", "inference_mode": true;
 *                         newer fields written only when they differ from their defaults,
 *                         so PEFT releases that reject unknown keys still load the file.
 *   adapter_model.safetensors   {"format": "pt"}; keys as PEFT saves them:
 *     base_model.model.<module>.lora_A.weight / .lora_B.weight
 *     base_model.model.<module>.lora_embedding_A / .lora_embedding_B   (an Embedding; no .weight)
 *     base_model.model.<module>.base_layer.weight              (targeted embeddings, see savesEmbeddingBase)
 *     base_model.model.<module>.lora_magnitude_vector          (DoRA)
 *     base_model.model.<module>.base_layer.bias                (bias "lora_only" / "all")
 *     base_model.model.<module to save>.<its own keys>         (modules_to_save)
 * In memory the keys carry the adapter name (lora_A.default.weight,
 * lora_embedding_A.default), as in PEFT.
 */
import { join } from 'node:path';
import { mkdir, writeFile } from 'node:fs/promises';
import type { Tensor } from '@lorakit/core';
import { FileFormatError, SafetensorsFile, quote, saveSafetensors, tensorRecord, writeFileAtomic, type JsonValue, readJsonFile } from '@lorakit/core/io';
import { LoraConfig, type LoraConfigFields, type TargetModules } from './config.ts';

export const CONFIG_FILE = 'adapter_config.json';
export const WEIGHTS_FILE = 'adapter_model.safetensors';

/** camelCase field -> PEFT's JSON name. */
const FIELDS: Record<keyof LoraConfigFields, string> = {
  r: 'r', loraAlpha: 'lora_alpha', targetModules: 'target_modules', excludeModules: 'exclude_modules',
  layersToTransform: 'layers_to_transform', layersPattern: 'layers_pattern', rankPattern: 'rank_pattern', alphaPattern: 'alpha_pattern',
  loraDropout: 'lora_dropout', fanInFanOut: 'fan_in_fan_out', bias: 'bias', useRslora: 'use_rslora', useDora: 'use_dora',
  initLoraWeights: 'init_lora_weights', modulesToSave: 'modules_to_save', baseModelNameOrPath: 'base_model_name_or_path',
  revision: 'revision', taskType: 'task_type', inferenceMode: 'inference_mode',
};

/** Fields every PEFT release since 0.6 knows; the rest are written only when not default. */
const LONG_STANDING = new Set(['r', 'lora_alpha', 'target_modules', 'layers_to_transform', 'layers_pattern', 'rank_pattern', 'alpha_pattern', 'lora_dropout', 'fan_in_fan_out', 'bias', 'init_lora_weights', 'modules_to_save', 'base_model_name_or_path', 'revision', 'task_type', 'inference_mode']);
const NEWER_DEFAULTS: Record<string, unknown> = { use_rslora: false, use_dora: false, exclude_modules: null };

/** Fields PEFT writes that change nothing lorakit computes. */
const COSMETIC = new Set(['peft_type', 'peft_version', 'auto_mapping', 'megatron_config', 'megatron_core', 'loftq_config', 'eva_config', 'corda_config', 'kasa_config', 'lora_ga_config', 'monteclora_config', 'velora_config', 'qalora_group_size', 'ensure_weight_tying', 'use_bdlora', 'layer_replication', 'target_parameters', 'trainable_token_indices', 'alora_invocation_tokens', 'arrow_config', 'lora_bias', 'use_qalora', 'runtime_config']);

/** Fields that would change the math if set: lorakit refuses rather than compute something else. */
const UNSUPPORTED: Record<string, (v: JsonValue) => boolean> = {
  lora_bias: (v) => v === true,
  use_qalora: (v) => v === true,
  layer_replication: (v) => v !== null,
  target_parameters: (v) => v !== null && !(Array.isArray(v) && v.length === 0),
  trainable_token_indices: (v) => v !== null,
  alora_invocation_tokens: (v) => v !== null,
  arrow_config: (v) => v !== null,
  init_lora_weights: (v) => typeof v === 'string' && !['gaussian', 'eva'].includes(v),
};

export function configToJson(config: LoraConfig, targetModules: string[] | string): Record<string, unknown> {
  const json: Record<string, unknown> = { peft_type: 'LORA' };
  for (const [field, name] of Object.entries(FIELDS) as Array<[keyof LoraConfigFields, string]>) {
    const value = field === 'targetModules' ? targetModules : field === 'inferenceMode' ? true : config[field];
    if (LONG_STANDING.has(name) || JSON.stringify(value) !== JSON.stringify(NEWER_DEFAULTS[name])) json[name] = value;
  }
  return Object.fromEntries(Object.entries(json).sort(([a], [b]) => (a < b ? -1 : 1)));
}

export function configFromJson(json: Record<string, JsonValue>, file: string, warn: (message: string) => void): LoraConfig {
  if (json.peft_type === undefined) throw new FileFormatError('InvalidAdapterConfig', file, 'no "peft_type"; a LoRA adapter config says "peft_type": "LORA"');
  if (json.peft_type !== 'LORA') throw new FileFormatError('UnsupportedAdapterFeature', file, `peft_type ${quote(json.peft_type)} is not supported; lorakit reads LORA adapters`);
  for (const [name, isSet] of Object.entries(UNSUPPORTED)) {
    if (json[name] !== undefined && isSet(json[name])) throw new FileFormatError('UnsupportedAdapterFeature', file, `${name} = ${quote(JSON.stringify(json[name]))} is not supported by lorakit`);
  }
  if (json.ensure_weight_tying === true && mentionsEmbedding(json)) {
    throw new FileFormatError('UnsupportedAdapterFeature', file, 'ensure_weight_tying = "true" with an embedding (embed_tokens or lm_head) among target_modules or modules_to_save is not supported by lorakit (PEFT then gives a tied lm_head its own tied adapter)');
  }
  const known = new Set([...Object.values(FIELDS), ...COSMETIC]);
  const unknown = Object.keys(json).filter((k) => !known.has(k));
  if (unknown.length > 0) warn(`${file}: ignoring unknown fields ${unknown.map((k) => quote(k)).join(', ')}`);
  if (typeof json.lora_alpha !== 'number' || !Number.isFinite(json.lora_alpha)) throw new FileFormatError('InvalidAdapterConfig', file, `lora_alpha must be a number, got ${quote(JSON.stringify(json.lora_alpha ?? null))}`);
  const fields: Partial<LoraConfigFields> = {};
  for (const [field, name] of Object.entries(FIELDS) as Array<[keyof LoraConfigFields, string]>) {
    const value = json[name];
    if (value !== undefined && !(value === null && ['rankPattern', 'alphaPattern'].includes(field))) (fields as Record<string, unknown>)[field] = value;
  }
  if ((fields.initLoraWeights as unknown) === 'eva') fields.initLoraWeights = true; // EVA only chose the initial A: a trained adapter is plain LoRA
  try {
    return new LoraConfig({ ...fields, inferenceMode: true });
  } catch (error) {
    throw new FileFormatError('InvalidAdapterConfig', file, (error as Error).message.replace(/^LoraConfig\./, ''));
  }
}

/** Whether target_modules or modules_to_save names embed_tokens or lm_head (as an entry, a dotted suffix, or inside a regex). */
function mentionsEmbedding(json: Record<string, JsonValue>): boolean {
  const names = [json.target_modules, json.modules_to_save].flatMap((v) => (typeof v === 'string' ? [v] : Array.isArray(v) ? v.filter((e): e is string => typeof e === 'string') : []));
  return names.some((n) => /(embed_tokens|lm_head)/.test(n));
}

/** The key a module's tensor is saved under: `base_model.model.<module>.<local>` (local: `lora_A.weight`, `lora_magnitude_vector`, ...). */
export function savedKeyOf(module: string, local: string): string {
  return `base_model.model.${module}.${local}`;
}

/** The locals of a module's LoRA factors: a linear layer's lora_A/B modules, an embedding's bare lora_embedding_A/B parameters. */
export function factorLocals(embedding: boolean): { a: string; b: string } {
  return embedding ? { a: 'lora_embedding_A', b: 'lora_embedding_B' } : { a: 'lora_A.weight', b: 'lora_B.weight' };
}

/** Saved keys that belong to LoRA itself (factors and DoRA magnitudes), not to a base module they replace. */
export const LORA_KEY = /\.(lora_A\.weight|lora_B\.weight|lora_embedding_A|lora_embedding_B|lora_magnitude_vector)$/;

/** The module a LORA_KEY belongs to: `base_model.model.<module>.lora_A.weight` -> `<module>`. */
export function moduleOfLoraKey(key: string): string {
  return key.replace(/^base_model\.model\./, '').replace(LORA_KEY, '');
}

const EMBEDDING_NAMES = ['embed_tokens', 'lm_head'];

/**
 * Whether PEFT's save_pretrained also writes the base weights of the adapted
 * input and output embeddings (`<module>.base_layer.weight`): its default
 * save_embedding_layers="auto" does when "embedding layers are targeted",
 * which PEFT 0.21.2 decides on the names alone: a target list holding
 * "embed_tokens" or "lm_head" as an entry (not "model.embed_tokens"), or a
 * target regex that fully matches a module named ...embed_tokens or ...lm_head.
 * Loading puts such a weight into the base layer, so the merge starts from it.
 */
export function savesEmbeddingBase(targets: TargetModules, moduleNames: string[]): boolean {
  if (typeof targets === 'string') {
    if (targets === 'all-linear') return false;
    const pattern = new RegExp(`^(?:${targets})$`);
    return moduleNames.some((n) => EMBEDDING_NAMES.some((e) => n === e || n.endsWith(`.${e}`)) && pattern.test(n));
  }
  return (targets ?? []).some((t) => EMBEDDING_NAMES.includes(t));
}

/** An in-memory key (with the adapter name) -> the saved key, or null when it is not part of this adapter. */
export function savedKey(key: string, adapter: string, bias: LoraConfig['bias']): string | null {
  const a = escape(adapter);
  const lora = new RegExp(`\\.(lora_A|lora_B)\\.${a}\\.(weight|bias)$`);
  if (lora.test(key)) return key.replace(lora, '.$1.$2');
  const embedding = new RegExp(`\\.(lora_embedding_A|lora_embedding_B)\\.${a}$`);
  if (embedding.test(key)) return key.replace(embedding, '.$1');
  const magnitude = new RegExp(`\\.lora_magnitude_vector\\.${a}\\.weight$`);
  if (magnitude.test(key)) return key.replace(magnitude, '.lora_magnitude_vector');
  const toSave = `.modules_to_save.${adapter}.`;
  if (key.includes(toSave)) return key.replace(toSave, '.');
  if (/\.(lora_A|lora_B|lora_embedding_A|lora_embedding_B|lora_magnitude_vector|modules_to_save|original_module)\./.test(key)) return null;
  if (bias === 'all' && key.endsWith('.bias')) return key;
  if (bias === 'lora_only' && key.endsWith('.base_layer.bias')) return key;
  return null;
}

/** A saved key as lorakit saves it, accepting the adapter-name segment older PEFT releases left in. */
export function normalizeSavedKey(key: string): string {
  return key
    .replace(/\.(lora_A|lora_B)\.[^.]+\.(weight|bias)$/, '.$1.$2')
    .replace(/\.(lora_embedding_A|lora_embedding_B)\.[^.]+$/, '.$1')
    .replace(/\.lora_magnitude_vector(\.[^.]+)?(\.weight)?$/, '.lora_magnitude_vector');
}

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

export async function writeAdapter(dir: string, config: Record<string, unknown>, tensors: Map<string, Tensor>): Promise<void> {
  await mkdir(dir, { recursive: true });
  await saveSafetensors(join(dir, WEIGHTS_FILE), new Map([...tensors].map(([k, t]) => [k, tensorRecord(t, 'F32')])));
  const text = `${JSON.stringify(config, null, 2)}\n`;
  await writeFileAtomic(join(dir, CONFIG_FILE), (handle) => writeFile(handle, text));
}

export interface AdapterFiles {
  config: LoraConfig;
  tensors: Map<string, Tensor>;
  weightsFile: string;
}

export async function readAdapter(dir: string, warn: (message: string) => void): Promise<AdapterFiles> {
  const configFile = join(dir, CONFIG_FILE);
  const config = configFromJson(await readJsonFile(configFile, 'adapter config'), configFile, warn);
  const weightsFile = join(dir, WEIGHTS_FILE);
  const file = await SafetensorsFile.open(weightsFile).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') throw new FileFormatError('MissingAdapterWeights', weightsFile, `missing (lorakit reads ${WEIGHTS_FILE}; adapter_model.bin pickles are never loaded)`);
    throw error;
  });
  try {
    const keys = new Map<string, string>(); // key → name in the file
    for (const name of file.names()) {
      const key = normalizeSavedKey(name);
      if (keys.has(key)) throw new FileFormatError('DuplicateTensorName', weightsFile, `${quote(name)} and another key both mean ${quote(key)}`);
      keys.set(key, name);
    }
    // all at once: hundreds of small reads cost their round trips, not their bytes
    const tensors = new Map(await Promise.all([...keys].map(async ([key, name]) => [key, await file.read(name)] as const)));
    if (tensors.size === 0) throw new FileFormatError('EmptyAdapter', weightsFile, 'holds no tensors');
    return { config, tensors, weightsFile };
  } finally {
    await file.close();
  }
}
