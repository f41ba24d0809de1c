/**
 * A model as one GGUF file for llama.cpp (and ollama, LM Studio, node-llama-cpp), in llama.cpp's convention:
 * `general.architecture` and the hyperparameters under its keys, the tokenizer (gguf-tokenizer.ts), and the
 * weights under llama.cpp's names (`token_embd.weight`, `blk.N.attn_q.weight`, ...).
 *
 *   llama, mistral, qwen2, qwen3, olmo2, granite, gemma, gemma2, gemma3_text, gemma3 (its language model), smollm3,
 *   phi3, gpt2: one entry each in GGUF_FAMILIES
 *   llama's, granite's and smollm3's architectures keep q and k in Meta's rotary layout, the two halves of each head
 *   interleaved: a Hugging Face q/k weight (or bias) is permuted back, rows [h, 2, D/2] -> [h, D/2, 2]
 *
 * What llama.cpp would compute otherwise in every run is refused by name; what it computes otherwise in some runs
 * only (past a sliding window it ignores, longrope's switch) is written and said through onWarning.
 * Matrices are written in the chosen type (f32, f16, bf16, q8_0); norms, biases, rope factors and GPT-2's positions
 * stay f32, as llama.cpp's converter keeps them.
 */
import type { Tensor } from '@lorakit/core';
import { floatValues, writeGguf, type GgmlType, type GgufTensor, type GgufValue } from '@lorakit/core/io';
import type { CausalLM } from '../causal-lm.ts';
import { layerConfig, type LlamaFamilyConfig } from '../llama/config.ts';
import type { GPT2Config } from '../gpt2/config.ts';
import { TEXT_TOKEN_IDS, type Gemma3Config } from '../gemma3/config.ts';
import { Rotary, ropeParameters, rotaryDims } from '../rope.ts';
import { tokenizerMetadata } from './gguf-tokenizer.ts';

export type GgufDtype = 'f32' | 'f16' | 'bf16' | 'q8_0';

const GGML: Record<GgufDtype, GgmlType> = { f32: 'F32', f16: 'F16', bf16: 'BF16', q8_0: 'Q8_0' };
/** general.file_type: llama_ftype's ALL_F32, MOSTLY_F16, MOSTLY_Q8_0, MOSTLY_BF16. */
const FILE_TYPES: Record<GgufDtype, number> = { f32: 0, f16: 1, q8_0: 7, bf16: 32 };

/**
 * What a model family becomes in llama.cpp: the architecture, its hyperparameter keys, the names of its weights
 * (a layer's parts after `blk.N.`), how values change on the way (gemma's norms hold w where llama.cpp multiplies by
 * w, not 1 + w; GPT-2's Conv1D weights are stored [in, out]), whether q/k rows go back to Meta's layout, whether the
 * head may be left to the embedding, and what llama.cpp would compute differently (refused by name).
 */
interface GgufFamily {
  arch: string;
  permuteQK: boolean;
  top: Record<string, string>;
  /** Hugging Face names under a layer (`model.layers.N.` or `transformer.h.N.`) -> llama.cpp's under `blk.N.`. */
  layer: Record<string, string>;
  keys: (config: FamilyConfig) => Array<[string, GgufValue]>;
  /** The head when tied: left out (llama.cpp reads token_embd), or written as a copy (olmo2 requires it). */
  tiedHead: 'left out' | 'copied';
  /** Weights Hugging Face stores [in, out] (GPT-2's Conv1D), transposed to llama.cpp's [out, in]. */
  storedTransposed?: RegExp;
  /** A change of values on the way (gemma's norms). */
  transform?: (name: string, values: Float32Array) => Float32Array;
  /** What llama.cpp would compute otherwise for this config, or null. */
  refusal?: (config: FamilyConfig) => string | null;
  /** Where llama.cpp's results part from the model's in some runs only (said when written; null: not here). */
  differences?: (config: FamilyConfig) => Array<string | null>;
  /** The activation of the gated MLP llama.cpp computes (not read from the file). */
  activation?: 'silu' | 'gelu_pytorch_tanh';
  /** The language model's config, where the checkpoint holds more than one model (gemma3: vision and language). */
  languageModel?: (config: FamilyConfig) => FamilyConfig;
}

type FamilyConfig = LlamaFamilyConfig & Omit<GPT2Config, 'model_type'>;

const LLAMA_TOP = { 'model.embed_tokens.weight': 'token_embd.weight', 'model.norm.weight': 'output_norm.weight', 'lm_head.weight': 'output.weight' };
const LLAMA_LAYER: Record<string, string> = {
  'input_layernorm.weight': 'attn_norm.weight', 'post_attention_layernorm.weight': 'ffn_norm.weight',
  'self_attn.q_proj.weight': 'attn_q.weight', 'self_attn.k_proj.weight': 'attn_k.weight', 'self_attn.v_proj.weight': 'attn_v.weight', 'self_attn.o_proj.weight': 'attn_output.weight',
  'self_attn.q_proj.bias': 'attn_q.bias', 'self_attn.k_proj.bias': 'attn_k.bias', 'self_attn.v_proj.bias': 'attn_v.bias', 'self_attn.o_proj.bias': 'attn_output.bias',
  'self_attn.q_norm.weight': 'attn_q_norm.weight', 'self_attn.k_norm.weight': 'attn_k_norm.weight',
  'mlp.gate_proj.weight': 'ffn_gate.weight', 'mlp.up_proj.weight': 'ffn_up.weight', 'mlp.down_proj.weight': 'ffn_down.weight',
  'mlp.gate_proj.bias': 'ffn_gate.bias', 'mlp.up_proj.bias': 'ffn_up.bias', 'mlp.down_proj.bias': 'ffn_down.bias',
};
/** Sandwich norms (gemma2): the norm after the attention, before and after the MLP. */
const SANDWICH = { ...LLAMA_LAYER, 'post_attention_layernorm.weight': 'post_attention_norm.weight', 'pre_feedforward_layernorm.weight': 'ffn_norm.weight', 'post_feedforward_layernorm.weight': 'post_ffw_norm.weight' };

const u32 = (value: number): GgufValue => ({ type: 'u32', value });
const f32 = (value: number): GgufValue => ({ type: 'f32', value });

/** gemma's RMSNorm multiplies by 1 + w; llama.cpp's by the weight it reads. */
const plusOneOnNorms = (name: string, values: Float32Array) => (/norm\.weight$/.test(name) ? values.map((v) => v + 1) : values);

/** `of` for each layer's config. */
const perLayer = <T>(config: FamilyConfig, of: (layer: ReturnType<typeof layerConfig>) => T): T[] => Array.from({ length: config.num_hidden_layers }, (_, i) => of(layerConfig(config, i)));

/** The sliding window llama.cpp's `arch` ignores, said when it is shorter than the positions the model takes. */
function windowDifference(config: FamilyConfig, arch: string): string | null {
  const window = perLayer(config, (layer) => layer.sliding_window).find((w) => w !== null);
  if (window === undefined || window >= config.max_position_embeddings) return null;
  return `the model attends within a sliding window of ${window} positions, llama.cpp's ${arch} architecture to every position: outputs differ once a sequence is longer than ${window} tokens`;
}

/** longrope's switch to its long factors, which llama.cpp makes by the context size and transformers by the sequence length. */
function longropeDifference(config: FamilyConfig): string | null {
  const after = new Rotary(config).switchesAfter;
  if (after === null) return null;
  return `llama.cpp takes longrope's long factors for every token once its context is larger than ${after} positions, transformers (and lorakit) only for a sequence longer than ${after} tokens: run it with a context of at most ${after} for the short factors`;
}

/**
 * llama.cpp's sliding layers for gemma2/3: `attention.sliding_window_pattern` p, layer i sliding when i % p < p - 1
 * (0: every layer). The p that gives the model's layers, or null when none does.
 */
function slidingPeriod(config: FamilyConfig): number | null {
  const sliding = perLayer(config, (layer) => layer.sliding_window !== null);
  for (let p = 0; p <= sliding.length; p++) if (sliding.every((s, i) => s === (p === 0 || i % p < p - 1))) return p;
  return null;
}

/**
 * Why llama.cpp's gemma2/3 would compute this config otherwise, or null: they scale queries by 1/√head_dim, or by
 * 1/√(hidden / heads) for the 27B model (told apart by its layer count), where transformers takes
 * 1/√query_pre_attn_scalar; and their sliding layers follow a period (slidingPeriod).
 */
function gemmaRefusal(c: FamilyConfig, arch: string, layersOf27B: number): string | null {
  const is27B = c.num_hidden_layers === layersOf27B;
  const scalar = is27B ? c.hidden_size / c.num_attention_heads : c.head_dim;
  if (c.query_pre_attn_scalar !== scalar) {
    return `its query_pre_attn_scalar ${c.query_pre_attn_scalar} is not ${is27B ? `hidden_size / num_attention_heads ${scalar}, which llama.cpp's ${arch} takes for its ${layersOf27B} layers` : `its head_dim ${scalar}, and llama.cpp's ${arch} scales queries by 1/√head_dim`}`;
  }
  return slidingPeriod(c) === null ? `its sliding layers follow no pattern llama.cpp's ${arch} has (the last of every p layers full)` : null;
}

const GEMMA3_TEXT: GgufFamily = {
  arch: 'gemma3', activation: 'gelu_pytorch_tanh', permuteQK: false, top: LLAMA_TOP, layer: SANDWICH, tiedHead: 'left out', transform: plusOneOnNorms,
  keys: gemma3Keys,
  refusal: (c) => ((c.attn_logit_softcapping ?? null) !== null ? 'its attention is soft-capped, which llama.cpp\'s gemma3 does not do' : gemmaRefusal(c, 'gemma3', 62)),
};

/**
 * gemma3's checkpoints (vision and language) as llama.cpp's converter writes them: the language model alone, its
 * config text_config with the top level's token ids and no final soft cap (the vision model's head has none); the
 * vision tower would be a separate projector file llama.cpp reads beside it, which lorakit does not load.
 */
const GEMMA3: GgufFamily = {
  ...GEMMA3_TEXT,
  top: { 'model.language_model.embed_tokens.weight': 'token_embd.weight', 'model.language_model.norm.weight': 'output_norm.weight', 'lm_head.weight': 'output.weight' },
  languageModel: (c) => {
    const outer = c as unknown as Gemma3Config;
    return { ...outer.text_config, ...Object.fromEntries(TEXT_TOKEN_IDS.map((k) => [k, outer[k]])), final_logit_softcapping: null } as FamilyConfig;
  },
};

const GGUF_FAMILIES: Record<string, GgufFamily> = {
  llama: { arch: 'llama', activation: 'silu', permuteQK: true, top: LLAMA_TOP, layer: LLAMA_LAYER, keys: llamaKeys, tiedHead: 'left out', differences: (c) => [windowDifference(c, 'llama')] },
  qwen2: { arch: 'qwen2', activation: 'silu', permuteQK: false, top: LLAMA_TOP, layer: LLAMA_LAYER, keys: llamaKeys, tiedHead: 'left out', differences: (c) => [windowDifference(c, 'qwen2')] },
  qwen3: { arch: 'qwen3', activation: 'silu', permuteQK: false, top: LLAMA_TOP, layer: LLAMA_LAYER, keys: llamaKeys, tiedHead: 'left out', differences: (c) => [windowDifference(c, 'qwen3')] },
  olmo2: { arch: 'olmo2', activation: 'silu', permuteQK: false, top: LLAMA_TOP, layer: SANDWICH, keys: llamaKeys, tiedHead: 'copied' },
  granite: {
    arch: 'granite', activation: 'silu', permuteQK: true, top: LLAMA_TOP, layer: LLAMA_LAYER, tiedHead: 'left out',
    keys: (c) => [...llamaKeys(c), ['attention.scale', f32(c.attention_multiplier ?? 1)], ['embedding_scale', f32(c.embedding_multiplier ?? 1)], ['residual_scale', f32(c.residual_multiplier ?? 1)], ['logit_scale', f32(c.logits_scaling ?? 1)]],
  },
  gemma: { arch: 'gemma', activation: 'gelu_pytorch_tanh', permuteQK: false, top: LLAMA_TOP, layer: LLAMA_LAYER, keys: gemmaKeys, tiedHead: 'left out', transform: plusOneOnNorms },
  gemma2: {
    arch: 'gemma2', activation: 'gelu_pytorch_tanh', permuteQK: false, top: LLAMA_TOP, layer: SANDWICH, tiedHead: 'left out', transform: plusOneOnNorms,
    keys: (c) => [...gemmaKeys(c), ['attn_logit_softcapping', f32(c.attn_logit_softcapping ?? 0)], ['final_logit_softcapping', f32(c.final_logit_softcapping ?? 0)], ...slidingKeys(c)],
    refusal: (c) => gemmaRefusal(c, 'gemma2', 46),
  },
  gemma3_text: GEMMA3_TEXT,
  gemma3: GEMMA3,
  smollm3: {
    arch: 'smollm3', activation: 'silu', permuteQK: true, top: LLAMA_TOP, layer: LLAMA_LAYER, keys: llamaKeys, tiedHead: 'left out',
    refusal: (c) => {
      const nope = perLayer(c, (layer) => layer.rope === null);
      return nope.some((n, i) => n !== ((i + 1) % 4 === 0)) ? 'its layers without rotary positions are not every fourth, the one pattern llama.cpp\'s smollm3 has' : null;
    },
    differences: (c) => [windowDifference(c, 'smollm3')],
  },
  phi3: {
    arch: 'phi3', activation: 'silu', permuteQK: false, top: LLAMA_TOP, layer: { ...LLAMA_LAYER, 'self_attn.qkv_proj.weight': 'attn_qkv.weight', 'mlp.gate_up_proj.weight': 'ffn_up.weight' }, tiedHead: 'left out',
    keys: phi3Keys,
    differences: (c) => [windowDifference(c, 'phi3'), longropeDifference(c)],
  },
  gpt2: {
    arch: 'gpt2', permuteQK: false, tiedHead: 'left out',
    top: { 'transformer.wte.weight': 'token_embd.weight', 'transformer.wpe.weight': 'position_embd.weight', 'transformer.ln_f.weight': 'output_norm.weight', 'transformer.ln_f.bias': 'output_norm.bias', 'lm_head.weight': 'output.weight' },
    layer: {
      'ln_1.weight': 'attn_norm.weight', 'ln_1.bias': 'attn_norm.bias', 'attn.c_attn.weight': 'attn_qkv.weight', 'attn.c_attn.bias': 'attn_qkv.bias', 'attn.c_proj.weight': 'attn_output.weight', 'attn.c_proj.bias': 'attn_output.bias',
      'ln_2.weight': 'ffn_norm.weight', 'ln_2.bias': 'ffn_norm.bias', 'mlp.c_fc.weight': 'ffn_up.weight', 'mlp.c_fc.bias': 'ffn_up.bias', 'mlp.c_proj.weight': 'ffn_down.weight', 'mlp.c_proj.bias': 'ffn_down.bias',
    },
    keys: (c) => [['context_length', u32(c.n_positions)], ['embedding_length', u32(c.n_embd)], ['block_count', u32(c.n_layer)], ['feed_forward_length', u32(c.n_inner ?? 4 * c.n_embd)], ['attention.head_count', u32(c.n_head)], ['attention.layer_norm_epsilon', f32(c.layer_norm_epsilon)]],
    storedTransposed: /\.(c_attn|c_proj|c_fc)\.weight$/,
    refusal: (c) => (c.scale_attn_by_inverse_layer_idx ? 'it scales attention by the inverse layer index, which llama.cpp\'s gpt2 does not' : c.activation_function === 'relu' ? 'its activation is relu; llama.cpp\'s gpt2 computes GELU' : null),
  },
};
GGUF_FAMILIES.mistral = GGUF_FAMILIES.llama;

/** llama.cpp's architecture for each model_type lorakit writes. */
export const GGUF_ARCHITECTURES: Record<string, { arch: string; permuteQK: boolean }> = GGUF_FAMILIES;

/** [rows, columns] -> [columns, rows] (GPT-2's Conv1D weights, stored [in, out], as llama.cpp's [out, in]). */
function transposed(values: Float32Array, rows: number, columns: number): Float32Array {
  const out = new Float32Array(values.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < columns; c++) out[c * rows + r] = values[r * columns + c];
  return out;
}

/** The llama.cpp name of a Hugging Face weight of `modelType`, or null for one llama.cpp does not read. */
export function ggufTensorName(name: string, modelType = 'llama'): string | null {
  const family = GGUF_FAMILIES[modelType] ?? GGUF_FAMILIES.llama;
  if (name in family.top) return family.top[name];
  const layer = /^(?:model\.layers|model\.language_model\.layers|transformer\.h)\.(\d+)\.(.+)$/.exec(name);
  const part = layer === null ? undefined : family.layer[layer[2]];
  return part === undefined ? null : `blk.${layer![1]}.${part}`;
}

/**
 * Rows [heads, 2, D/2] -> [heads, D/2, 2] per head: Hugging Face's rotate-half layout back to Meta's interleaved
 * one, which llama.cpp's llama and granite architectures rotate. `values` is [rows, columns] (columns 1 for a bias).
 */
export function toInterleaved(values: Float32Array, rows: number, columns: number, heads: number): Float32Array {
  const half = rows / heads / 2;
  const out = new Float32Array(values.length);
  for (let h = 0; h < heads; h++) {
    for (let i = 0; i < half; i++) {
      for (let pair = 0; pair < 2; pair++) {
        const from = (h * 2 * half + pair * half + i) * columns; // [h, pair, i]
        const to = (h * 2 * half + i * 2 + pair) * columns; // [h, i, pair]
        out.set(values.subarray(from, from + columns), to);
      }
    }
  }
  return out;
}

/** The keys of the llama-like architectures (llama, qwen2, qwen3, olmo2, granite). */
function llamaKeys(config: FamilyConfig): Array<[string, GgufValue]> {
  const rope = ropeParameters(config);
  return [
    ['context_length', u32(config.max_position_embeddings)],
    ['embedding_length', u32(config.hidden_size)],
    ['block_count', u32(config.num_hidden_layers)],
    ['feed_forward_length', u32(config.intermediate_size)],
    ['attention.head_count', u32(config.num_attention_heads)],
    ['attention.head_count_kv', u32(config.num_key_value_heads)],
    ['attention.key_length', u32(config.head_dim)],
    ['attention.value_length', u32(config.head_dim)],
    ['attention.layer_norm_rms_epsilon', f32(config.rms_norm_eps)],
    ['rope.freq_base', f32(rope.rope_theta)],
    ['rope.dimension_count', u32(rotaryDims(config))],
    ['vocab_size', u32(config.vocab_size)],
    ...(rope.rope_type === 'linear' ? ([['rope.scaling.type', { type: 'string', value: 'linear' }], ['rope.scaling.factor', f32(rope.factor!)]] as Array<[string, GgufValue]>) : []),
  ];
}

/** gemma's keys: no rope keys (llama.cpp takes base 10000 and every dim), no vocabulary size. */
function gemmaKeys(config: FamilyConfig): Array<[string, GgufValue]> {
  return llamaKeys(config).filter(([key]) => !key.startsWith('rope.') && key !== 'vocab_size');
}

/** gemma3's keys: gemma's, the full and sliding ropes' bases and the full one's linear scaling, the final soft cap, the window. */
function gemma3Keys(config: FamilyConfig): Array<[string, GgufValue]> {
  const [full, sliding] = [ropeParameters(config, 'full_attention'), ropeParameters(config, 'sliding_attention')];
  return [
    ...gemmaKeys(config),
    ['rope.freq_base', f32(full.rope_theta)],
    ['rope.freq_base_swa', f32(sliding.rope_theta)],
    ...(full.rope_type === 'linear' ? ([['rope.scaling.type', { type: 'string', value: 'linear' }], ['rope.scaling.factor', f32(full.factor!)]] as Array<[string, GgufValue]>) : []),
    ...((config.final_logit_softcapping ?? null) !== null ? [['final_logit_softcapping', f32(config.final_logit_softcapping!)] as [string, GgufValue]] : []),
    ...slidingKeys(config),
  ];
}

/** gemma2/3's window and which layers it applies to. */
function slidingKeys(config: FamilyConfig): Array<[string, GgufValue]> {
  return [['attention.sliding_window', u32(config.sliding_window ?? 0)], ['attention.sliding_window_pattern', u32(slidingPeriod(config)!)]];
}

/** phi3's keys: llama's, and longrope's original context and cos/sin factor; its window, which llama.cpp reads and ignores. */
function phi3Keys(config: FamilyConfig): Array<[string, GgufValue]> {
  const rotary = new Rotary(config);
  return [
    ...llamaKeys(config),
    ...(rotary.switchesAfter === null ? [] : ([['rope.scaling.original_context_length', u32(rotary.switchesAfter)], ['rope.scaling.attn_factor', f32(rotary.attentionFactor)]] as Array<[string, GgufValue]>)),
    ...(config.sliding_window ? [['attention.sliding_window', u32(config.sliding_window)] as [string, GgufValue]] : []),
  ];
}

/** The model's family, and the config of what is written (the language model's), or an error saying why neither. */
function familyOf(model: CausalLM): { family: GgufFamily; config: FamilyConfig } {
  const type = model.config.model_type;
  const family = GGUF_FAMILIES[type];
  if (family === undefined) throw new Error(`a ${type} model cannot be written as GGUF yet (lorakit writes ${Object.keys(GGUF_FAMILIES).join(', ')})`);
  const config = family.languageModel?.(model.config as FamilyConfig) ?? (model.config as FamilyConfig);
  if (type !== 'gpt2') {
    const ropes = family.arch === 'gemma3' ? [ropeParameters(config, 'full_attention'), ropeParameters(config, 'sliding_attention')] : [ropeParameters(config)];
    const rope = ropes[0];
    const asTensors = (family.arch === 'llama' && rope.rope_type === 'llama3') || (family.arch === 'phi3' && rope.rope_type === 'longrope'); // ropeTensors()
    const other = ropes.find((r) => r.rope_type !== 'default' && r.rope_type !== 'linear' && !asTensors);
    if (other !== undefined) throw new Error(`rope type ${other.rope_type} cannot be written as GGUF yet (default and linear can, llama3 for llama, longrope for phi3)`);
    if (type === 'gemma' && (rope.rope_type !== 'default' || rope.rope_theta !== 10000)) throw new Error('a gemma model with a rope other than the default base 10000 cannot be written as GGUF: llama.cpp\'s gemma reads no rope keys');
  }
  const activation = family.activation === undefined ? undefined : layerConfig(config, 0).hidden_act;
  if (activation !== family.activation) throw new Error(`this ${type} model's MLP computes ${activation}; llama.cpp's ${family.arch} computes ${family.activation}`);
  const refused = family.refusal?.(config) ?? null;
  if (refused !== null) throw new Error(`this ${type} model ${refused.startsWith('its') ? 'is refused: ' : ''}${refused}`);
  return { family, config };
}

export interface GgufModelOptions {
  /** The checkpoint folder the model came from: its tokenizer goes into the file. */
  source: string;
  dtype?: GgufDtype;
  /** Told what llama.cpp will do differently from the checkpoint (default: process.emitWarning). */
  onWarning?: (message: string) => void;
}

/** Write `model` as the GGUF file `path`. */
export async function writeGgufModel(model: CausalLM, path: string, { source, dtype = 'f32', onWarning = (m) => process.emitWarning(m) }: GgufModelOptions): Promise<void> {
  const { family, config } = familyOf(model);
  for (const difference of family.differences?.(config) ?? []) if (difference !== null) onWarning(`${source}: ${difference}`);
  const metadata: Array<[string, GgufValue]> = [
    ['general.architecture', { type: 'string', value: family.arch }],
    ['general.file_type', u32(FILE_TYPES[dtype])],
    ...(dtype === 'q8_0' ? [['general.quantization_version', u32(2)] as [string, GgufValue]] : []),
    ...family.keys(config).map(([key, value]): [string, GgufValue] => [`${family.arch}.${key}`, value]),
    ...(await tokenizerMetadata(source, config, onWarning)),
  ];
  const tied = new Map(model.tiedWeights());
  const state = model.stateDict();
  const tensors: GgufTensor[] = [];
  for (const [name, tensor] of state) {
    if (tied.has(name) && family.tiedHead === 'left out') continue;
    const ggufName = ggufTensorName(name, model.config.model_type);
    if (ggufName === null) throw new Error(`the weight ${name} has no place in llama.cpp's ${family.arch} architecture`);
    tensors.push(ggufTensor(ggufName, name, tensor, dtype, family, family.permuteQK ? qkHeads(name, config) : null));
  }
  writeGguf(path, metadata, family.arch === 'gpt2' ? tensors : [...tensors, ...ropeTensors(config)]);
}

/**
 * A rope llama.cpp reads as tensors: llama3's as rope_freqs.weight [R/2], the factor each default frequency is
 * divided by (1 for the high frequencies, `factor` for the low ones, a blend between: the ratio of the two ropes
 * lorakit computes); longrope's two lists as rope_factors_short/long.weight [R/2]. None for the other ropes.
 */
function ropeTensors(config: FamilyConfig): GgufTensor[] {
  const rope = ropeParameters(config);
  const tensor = (name: string, factors: ArrayLike<number>): GgufTensor => ({ name, shape: [factors.length], type: 'F32', values: () => Float32Array.from(factors) });
  if (rope.rope_type === 'longrope') return [tensor('rope_factors_long.weight', rope.long_factor!), tensor('rope_factors_short.weight', rope.short_factor!)];
  if (rope.rope_type !== 'llama3') return [];
  const scaled = new Rotary(config).inverseFrequencies();
  const plain = new Rotary({ ...config, rope_scaling: undefined, rope_parameters: { rope_type: 'default', rope_theta: rope.rope_theta } }).inverseFrequencies();
  return [tensor('rope_freqs.weight', Float32Array.from(plain, (inverse, i) => inverse / scaled[i]))];
}

/** For q and k weights and biases: the heads their rows are permuted by (k: the key/value heads). */
export function qkHeads(name: string, config: LlamaFamilyConfig): number | null {
  if (/\.self_attn\.q_proj\.(weight|bias)$/.test(name)) return config.num_attention_heads;
  if (/\.self_attn\.k_proj\.(weight|bias)$/.test(name)) return config.num_key_value_heads;
  return null;
}

function ggufTensor(ggufName: string, name: string, tensor: Tensor, dtype: GgufDtype, family: GgufFamily, heads: number | null): GgufTensor {
  const matrix = tensor.ndim === 2 && ggufName !== 'position_embd.weight'; // llama.cpp's converter keeps GPT-2's positions f32
  const transposes = family.storedTransposed?.test(name) ?? false;
  const shape = transposes ? [tensor.shape[1], tensor.shape[0]] : tensor.shape;
  const [rows, columns] = tensor.ndim === 2 ? shape : [shape[0], 1];
  const values = () => {
    const stored = transposes ? transposed(floatValues(tensor), columns, rows) : floatValues(tensor);
    const changed = family.transform?.(name, stored) ?? stored;
    return heads === null ? changed : toInterleaved(changed, rows, columns, heads);
  };
  return { name: ggufName, shape, type: matrix ? GGML[dtype] : 'F32', values };
}
