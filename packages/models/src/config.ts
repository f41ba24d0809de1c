/**
 * config.json, read strictly and completed with transformers' defaults.
 *
 *   const config = await loadConfig('examples/models/tiny-code-llama');
 *   config.model_type  // 'llama'
 *
 * No code in a config is ever run (auto_map and trust_remote_code are
 * ignored); an unknown model_type or dtype is an error that lists what is
 * supported. Sizes are checked before anything is allocated.
 */
import { join } from 'node:path';
import { FileFormatError, JsonNumber, quote, readJsonFile, stringifyJson, type JsonValue } from '@lorakit/core/io';
import { LAYER_TYPED, LLAMA_DEFAULTS, SLIDING_IF_ENABLED, defaultLayerTypes, defaultNoRopeLayers, defaultWindowedLayerTypes, type LlamaFamilyConfig, type LlamaFamilyType } from './llama/config.ts';
import { GPT2_DEFAULTS, type GPT2Config } from './gpt2/config.ts';
import { GEMMA3_DEFAULTS, TEXT_TOKEN_IDS, type Gemma3Config } from './gemma3/config.ts';

export type ModelConfig = LlamaFamilyConfig | GPT2Config | Gemma3Config;
export const SUPPORTED_MODEL_TYPES = ['llama', 'mistral', 'qwen2', 'qwen3', 'smollm3', 'granite', 'gemma', 'gemma2', 'gemma3_text', 'gemma3', 'phi3', 'olmo2', 'gpt2'] as const;

/** Fields that must be positive integers, with the largest value that is still plausible. */
const LIMITS: Record<string, number> = {
  vocab_size: 10_000_000, hidden_size: 131_072, intermediate_size: 1_048_576, num_hidden_layers: 1000,
  num_attention_heads: 4096, num_key_value_heads: 4096, head_dim: 8192, max_position_embeddings: 100_000_000,
  n_embd: 131_072, n_layer: 1000, n_head: 4096, n_positions: 100_000_000, n_inner: 1_048_576,
};

/**
 * The config's weight dtype names that transformers resolves (it looks the text up as an attribute of `torch`),
 * floating-point ones only. transformers refuses "auto" and "torch.float16" in a config file as well.
 */
export const CONFIG_DTYPES = ['float32', 'float16', 'bfloat16', 'float64', 'float', 'half', 'double'] as const;

function checkDtypes(config: Record<string, unknown>, path: string): void {
  for (const field of ['dtype', 'torch_dtype']) {
    const v = config[field];
    if (v === undefined || v === null || (CONFIG_DTYPES as readonly unknown[]).includes(v)) continue;
    throw new FileFormatError('InvalidConfig', path, `${field} = ${quote(v)} is not a dtype transformers accepts; use one of ${CONFIG_DTYPES.join(', ')}`);
  }
}

function checkSizes(config: Record<string, unknown>, path: string): void {
  for (const [field, limit] of Object.entries(LIMITS)) {
    const v = config[field];
    if (v === undefined || v === null) continue;
    if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0 || v > limit) {
      throw new FileFormatError('InvalidConfig', path, `${field} = ${quote(v)} must be a positive integer of at most ${limit}`);
    }
  }
}

/** Each loaded config's file with its numbers as written (JsonNumber), for configJson. */
const WRITTEN = new WeakMap<object, JsonValue>();

/**
 * config.json's text for a config, with `changes` on top: a number its file held is written as the file wrote
 * it, so 3.0 stays 3.0 (transformers 5 refuses 3 for a float field such as final_logit_softcapping).
 */
export function configJson(config: object, changes: Record<string, unknown> = {}): string {
  return stringifyJson(asWritten({ ...config, ...changes }, WRITTEN.get(config)) as JsonValue);
}

function asWritten(value: unknown, written: JsonValue | undefined): unknown {
  if (typeof value === 'number') return written instanceof JsonNumber && written.value() === value ? written : value;
  if (Array.isArray(value)) return value.map((v, i) => asWritten(v, Array.isArray(written) ? written[i] : undefined));
  if (value === null || typeof value !== 'object' || value instanceof JsonNumber) return value;
  const fields = written !== null && typeof written === 'object' && !Array.isArray(written) && !(written instanceof JsonNumber) ? written : {};
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, asWritten(v, fields[k])]));
}

export async function loadConfig(dir: string): Promise<ModelConfig> {
  const path = join(dir, 'config.json');
  const raw = await readJsonFile(path, 'model config');
  const config = await completeConfig(raw, path);
  WRITTEN.set(config, await readJsonFile(path, 'model config', { exact: true }));
  return config;
}

function completeConfig(raw: Record<string, JsonValue>, path: string): ModelConfig {
  const modelType = raw.model_type;
  if (typeof modelType !== 'string' || !(SUPPORTED_MODEL_TYPES as readonly string[]).includes(modelType)) {
    throw new FileFormatError('UnsupportedArchitecture', path, `model_type ${quote(modelType ?? null)} is not supported; lorakit supports ${SUPPORTED_MODEL_TYPES.join(', ')}`);
  }
  if (modelType === 'gemma3') return completeGemma3({ ...GEMMA3_DEFAULTS, ...raw }, path);
  const defaults = modelType === 'gpt2' ? GPT2_DEFAULTS : LLAMA_DEFAULTS[modelType as LlamaFamilyType];
  const config = { ...defaults, ...raw } as Record<string, unknown>;
  checkSizes(config, path);
  checkDtypes(config, path);
  return (modelType === 'gpt2' ? completeGpt2(config, path) : completeLlama(config, path)) as ModelConfig;
}

/**
 * gemma3 (gemma3/config.ts): text_config completed as a gemma3_text config (its errors say "text_config."),
 * the token ids transformers' generation takes from it when the top level leaves them unset, vision_config untouched.
 */
function completeGemma3(config: Record<string, unknown>, path: string): Gemma3Config {
  const fail = (detail: string): never => { throw new FileFormatError('InvalidConfig', path, detail); };
  checkDtypes(config, path);
  if (config.quantization_config !== undefined && config.quantization_config !== null) throw new FileFormatError('UnsupportedArchitecture', path, 'a 4-bit gemma3 checkpoint is not supported; lorakit reads gemma3 checkpoints in bf16, f16 or f32');
  const text = config.text_config ?? {};
  if (typeof text !== 'object' || text === null || Array.isArray(text)) fail(`text_config = ${quote(text as JsonValue)} must be an object (the gemma3_text config of the language model)`);
  const textType = (text as Record<string, unknown>).model_type ?? 'gemma3_text';
  if (textType !== 'gemma3_text') throw new FileFormatError('UnsupportedArchitecture', path, `text_config.model_type ${quote(textType as JsonValue)} is not supported; a gemma3 model's text_config is gemma3_text`);
  const textConfig = { ...LLAMA_DEFAULTS.gemma3_text, ...(text as Record<string, unknown>), model_type: 'gemma3_text' } as Record<string, unknown>;
  try {
    checkSizes(textConfig, path);
    checkDtypes(textConfig, path);
    config.text_config = completeLlama(textConfig, path);
  } catch (error) {
    if (!(error instanceof FileFormatError)) throw error;
    throw new FileFormatError(error.code, path, `text_config.${error.message.slice(path.length + 2)}`);
  }
  for (const field of TEXT_TOKEN_IDS) if (config[field] === undefined || config[field] === null) config[field] = textConfig[field] ?? null;
  if (typeof config.tie_word_embeddings !== 'boolean') fail(`tie_word_embeddings = ${quote(config.tie_word_embeddings as JsonValue)} must be true or false`);
  Object.defineProperty(config, 'vocab_size', { value: textConfig.vocab_size, enumerable: false });
  return config as unknown as Gemma3Config;
}

function completeLlama(config: Record<string, unknown>, path: string): LlamaFamilyConfig {
  const c = config as unknown as LlamaFamilyConfig;
  c.num_key_value_heads ??= c.num_attention_heads;
  c.head_dim ??= c.hidden_size / c.num_attention_heads;
  const fail = (detail: string): never => { throw new FileFormatError('InvalidConfig', path, detail); };
  if (!Number.isInteger(c.head_dim)) fail(`hidden_size ${c.hidden_size} is not divisible by num_attention_heads ${c.num_attention_heads}; set head_dim`);
  if (c.num_attention_heads % c.num_key_value_heads !== 0) fail(`num_attention_heads ${c.num_attention_heads} is not a multiple of num_key_value_heads ${c.num_key_value_heads}`);
  const activationField = c.hidden_activation !== undefined && c.hidden_activation !== null ? 'hidden_activation' : 'hidden_act';
  const activation = c[activationField];
  if (!['silu', 'gelu', 'gelu_pytorch_tanh', 'relu'].includes(activation as string)) fail(`${activationField} ${quote(String(activation))} is not supported (silu, gelu, gelu_pytorch_tanh, relu)`);
  if (!(typeof c.rms_norm_eps === 'number' && c.rms_norm_eps > 0)) fail(`rms_norm_eps must be a positive number`);
  if (c.model_type === 'smollm3') completeNoRopeLayers(c, fail);
  if (c.model_type === 'granite') checkGraniteScalars(c, fail);
  if (LAYER_TYPED.includes(c.model_type) || SLIDING_IF_ENABLED.includes(c.model_type)) completeLayerTypes(c, config, fail);
  if (c.model_type === 'gemma2' || c.model_type === 'gemma3_text') checkGemmaScalars(c, config, fail);
  if (c.model_type === 'phi3' && c.sliding_window !== null && c.sliding_window !== undefined) checkPositive(c, 'sliding_window', fail);
  return c;
}

function checkPositive(c: LlamaFamilyConfig, field: keyof LlamaFamilyConfig, fail: (detail: string) => never): void {
  const v = c[field];
  if (!(typeof v === 'number' && Number.isInteger(v) && v > 0)) fail(`${field} = ${quote(v ?? null)} must be a positive integer`);
}

/**
 * layer_types, one 'sliding_attention' or 'full_attention' per layer, by default as transformers derives them:
 * gemma2 every second layer full, gemma3_text every sliding_window_pattern-th (6); qwen2, qwen3 and smollm3
 * sliding only with use_sliding_window (defaultWindowedLayerTypes).
 */
function completeLayerTypes(c: LlamaFamilyConfig, config: Record<string, unknown>, fail: (detail: string) => never): void {
  if (SLIDING_IF_ENABLED.includes(c.model_type)) {
    if (typeof c.use_sliding_window !== 'boolean') fail(`use_sliding_window = ${quote(c.use_sliding_window ?? null)} must be true or false`);
    if (c.model_type !== 'smollm3' && !(Number.isInteger(c.max_window_layers) && c.max_window_layers! >= 0)) fail(`max_window_layers = ${quote(c.max_window_layers ?? null)} must be a non-negative integer`);
    c.layer_types ??= defaultWindowedLayerTypes(c);
  } else {
    const pattern = c.model_type === 'gemma2' ? 2 : (config.sliding_window_pattern ?? 6);
    if (!(typeof pattern === 'number' && Number.isInteger(pattern) && pattern > 0)) fail(`sliding_window_pattern = ${quote(pattern)} must be a positive integer`);
    c.layer_types ??= defaultLayerTypes(c.num_hidden_layers, pattern as number);
  }
  const types: unknown = c.layer_types;
  if (!Array.isArray(types) || types.length !== c.num_hidden_layers || !types.every((t) => t === 'sliding_attention' || t === 'full_attention')) {
    fail(`layer_types must list 'sliding_attention' or 'full_attention' for each of the ${c.num_hidden_layers} layers, got ${quote(types)}`);
  }
  const slides = c.layer_types!.includes('sliding_attention') && (LAYER_TYPED.includes(c.model_type) || c.use_sliding_window);
  if (slides && (LAYER_TYPED.includes(c.model_type) || c.sliding_window !== null)) checkPositive(c, 'sliding_window', fail);
}

/** gemma2/3's attention scale and soft caps; bidirectional attention (an embedding-model option) is refused. */
function checkGemmaScalars(c: LlamaFamilyConfig, config: Record<string, unknown>, fail: (detail: string) => never): void {
  if (!(typeof c.query_pre_attn_scalar === 'number' && c.query_pre_attn_scalar > 0)) fail(`query_pre_attn_scalar = ${quote(c.query_pre_attn_scalar ?? null)} must be a positive number`);
  for (const field of ['attn_logit_softcapping', 'final_logit_softcapping'] as const) {
    const v = c[field];
    if (v !== null && v !== undefined && !(typeof v === 'number' && v > 0)) fail(`${field} = ${quote(v)} must be a positive number or null`);
  }
  if (config.use_bidirectional_attention === true) fail(`${c.model_type} with use_bidirectional_attention is not supported (lorakit trains causal language models)`);
}

/** smollm3's no_rope_layers: one 0 or 1 per layer, by default from no_rope_layer_interval as transformers derives it. */
function completeNoRopeLayers(c: LlamaFamilyConfig, fail: (detail: string) => never): void {
  const interval = c.no_rope_layer_interval;
  if (!(typeof interval === 'number' && Number.isInteger(interval) && interval > 0)) fail(`no_rope_layer_interval must be a positive integer`);
  c.no_rope_layers ??= defaultNoRopeLayers(c.num_hidden_layers, interval!);
  const layers: unknown = c.no_rope_layers;
  if (!Array.isArray(layers) || layers.length !== c.num_hidden_layers || !layers.every((v) => v === 0 || v === 1)) {
    fail(`no_rope_layers must list 0 or 1 for each of the ${c.num_hidden_layers} layers, got ${quote(layers)}`);
  }
}

/** granite's four scalars: finite numbers, logits_scaling not zero (the logits are divided by it). */
function checkGraniteScalars(c: LlamaFamilyConfig, fail: (detail: string) => never): void {
  for (const field of ['embedding_multiplier', 'residual_multiplier', 'attention_multiplier', 'logits_scaling'] as const) {
    const v = c[field];
    if (typeof v !== 'number' || !Number.isFinite(v) || (field === 'logits_scaling' && v === 0)) fail(`${field} = ${quote(v ?? null)} must be a finite number${field === 'logits_scaling' ? ' other than 0' : ''}`);
  }
}

function completeGpt2(config: Record<string, unknown>, path: string): GPT2Config {
  const c = config as unknown as GPT2Config;
  c.n_inner ??= 4 * c.n_embd;
  if (c.n_embd % c.n_head !== 0) throw new FileFormatError('InvalidConfig', path, `n_embd ${c.n_embd} is not divisible by n_head ${c.n_head}`);
  if (!['gelu_new', 'gelu', 'gelu_pytorch_tanh', 'relu'].includes(c.activation_function)) {
    throw new FileFormatError('InvalidConfig', path, `activation_function ${quote(String(c.activation_function))} is not supported`);
  }
  if (c.scale_attn_by_inverse_layer_idx || c.reorder_and_upcast_attn) throw new FileFormatError('InvalidConfig', path, 'scale_attn_by_inverse_layer_idx and reorder_and_upcast_attn are not supported');
  return c;
}
