/**
 * A model as one GGUF file for llama.cpp (and ollama, LM Studio, node-llama-cpp), in llama.cpp's convention:
 * `general.architecture` and the hyperparameters under its keys, the tokenizer (gguf-tokenizer.ts), and the
 * weights under llama.cpp's names (`token_embd.weight`, `blk.N.attn_q.weight`, ...).
 *
 *   llama's architecture (llama, mistral) keeps q and k in Meta's rotary layout, the two halves of each head
 *   interleaved: a Hugging Face q/k weight (or bias) is permuted back, rows [h, 2, D/2] -> [h, D/2, 2]
 *   qwen2 and qwen3 rotate the halves as Hugging Face does: no permutation
 *
 * Matrices are written in the chosen type (f32, f16, bf16, q8_0); norms and biases stay f32, as llama.cpp's
 * converter keeps them. A tied head is left out: llama.cpp reads token_embd then.
 */
import { basename } from 'node:path';
import type { Tensor } from '@lorakit/core';
import { floatValues, writeGguf, type GgmlType, type GgufTensor, type GgufValue } from '@lorakit/core/io';
import type { CausalLM } from '../causal-lm.ts';
import { layerConfig, type LlamaFamilyConfig } from '../llama/config.ts';
import { ropeParameters, rotaryDims } from '../rope.ts';
import { tokenizerMetadata } from './gguf-tokenizer.ts';

export type GgufDtype = 'f32' | 'f16' | 'bf16' | 'q8_0';

const GGML: Record<GgufDtype, GgmlType> = { f32: 'F32', f16: 'F16', bf16: 'BF16', q8_0: 'Q8_0' };
/** general.file_type: llama_ftype's ALL_F32, MOSTLY_F16, MOSTLY_Q8_0, MOSTLY_BF16. */
const FILE_TYPES: Record<GgufDtype, number> = { f32: 0, f16: 1, q8_0: 7, bf16: 32 };

/** lorakit's model_type -> llama.cpp's architecture, and whether its q/k rows go back to Meta's layout. */
export const GGUF_ARCHITECTURES: Record<string, { arch: string; permuteQK: boolean }> = {
  llama: { arch: 'llama', permuteQK: true },
  mistral: { arch: 'llama', permuteQK: true },
  qwen2: { arch: 'qwen2', permuteQK: false },
  qwen3: { arch: 'qwen3', permuteQK: false },
};

/** The llama.cpp name of a Hugging Face weight of these architectures, or null for one llama.cpp does not read. */
export function ggufTensorName(name: string): string | null {
  const top: Record<string, string> = { 'model.embed_tokens.weight': 'token_embd.weight', 'model.norm.weight': 'output_norm.weight', 'lm_head.weight': 'output.weight' };
  if (name in top) return top[name];
  const layer = /^model\.layers\.(\d+)\.(.+)$/.exec(name);
  if (layer === null) return null;
  const parts: Record<string, string> = {
    'input_layernorm.weight': 'attn_norm.weight', 'post_attention_layernorm.weight': 'ffn_norm.weight',
    'self_attn.q_proj.weight': 'attn_q.weight', 'self_attn.k_proj.weight': 'attn_k.weight', 'self_attn.v_proj.weight': 'attn_v.weight', 'self_attn.o_proj.weight': 'attn_output.weight',
    'self_attn.q_proj.bias': 'attn_q.bias', 'self_attn.k_proj.bias': 'attn_k.bias', 'self_attn.v_proj.bias': 'attn_v.bias', 'self_attn.o_proj.bias': 'attn_output.bias',
    'self_attn.q_norm.weight': 'attn_q_norm.weight', 'self_attn.k_norm.weight': 'attn_k_norm.weight',
    'mlp.gate_proj.weight': 'ffn_gate.weight', 'mlp.up_proj.weight': 'ffn_up.weight', 'mlp.down_proj.weight': 'ffn_down.weight',
  };
  const part = parts[layer[2]];
  return part === undefined ? null : `blk.${layer[1]}.${part}`;
}

/**
 * Rows [heads, 2, D/2] -> [heads, D/2, 2] per head: Hugging Face's rotate-half layout back to Meta's interleaved
 * one, which llama.cpp's llama architecture rotates. `values` is [rows, columns] (columns 1 for a bias).
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

function architectureOf(model: CausalLM): { arch: string; permuteQK: boolean } {
  const known = GGUF_ARCHITECTURES[model.config.model_type];
  if (known === undefined) throw new Error(`a ${model.config.model_type} model cannot be written as GGUF yet (lorakit writes ${Object.keys(GGUF_ARCHITECTURES).join(', ')})`);
  const config = model.config as LlamaFamilyConfig;
  const window = Array.from({ length: config.num_hidden_layers }, (_, i) => layerConfig(config, i).sliding_window).find((w) => w !== null);
  if (window !== undefined) throw new Error(`this ${config.model_type} model attends within a sliding window of ${window} positions, which llama.cpp's ${known.arch} architecture does not: it would attend to every position`);
  const rope = ropeParameters(model.config as LlamaFamilyConfig);
  if (rope.rope_type !== 'default' && rope.rope_type !== 'linear') throw new Error(`rope type ${rope.rope_type} cannot be written as GGUF yet (default and linear can)`);
  return known;
}

function hyperparameters(config: LlamaFamilyConfig, arch: string): Array<[string, GgufValue]> {
  const rope = ropeParameters(config);
  const u32 = (value: number): GgufValue => ({ type: 'u32', value });
  const f32 = (value: number): GgufValue => ({ type: 'f32', value });
  const entries: Array<[string, GgufValue]> = [
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
  ];
  if (rope.rope_type === 'linear') entries.push(['rope.scaling.type', { type: 'string', value: 'linear' }], ['rope.scaling.factor', f32(rope.factor!)]);
  return entries.map(([key, value]) => [`${arch}.${key}`, value]);
}

export interface GgufModelOptions {
  /** The checkpoint folder the model came from: its tokenizer goes into the file. */
  source: string;
  dtype?: GgufDtype;
}

/** Write `model` as the GGUF file `path`. */
export async function writeGgufModel(model: CausalLM, path: string, { source, dtype = 'f32' }: GgufModelOptions): Promise<void> {
  const { arch, permuteQK } = architectureOf(model);
  const config = model.config as LlamaFamilyConfig;
  const metadata: Array<[string, GgufValue]> = [
    ['general.architecture', { type: 'string', value: arch }],
    ['general.name', { type: 'string', value: basename(source) }],
    ['general.file_type', { type: 'u32', value: FILE_TYPES[dtype] }],
    ...(dtype === 'q8_0' ? [['general.quantization_version', { type: 'u32', value: 2 }] as [string, GgufValue]] : []),
    ...hyperparameters(config, arch),
    ...(await tokenizerMetadata(source, config)),
  ];
  const tied = new Set(model.tiedWeights().map(([alias]) => alias));
  const tensors: GgufTensor[] = [];
  for (const [name, tensor] of model.stateDict()) {
    if (tied.has(name)) continue;
    const ggufName = ggufTensorName(name);
    if (ggufName === null) throw new Error(`the weight ${name} has no place in llama.cpp's ${arch} architecture`);
    tensors.push(ggufTensor(ggufName, tensor, dtype, permuteQK ? qkHeads(name, config) : null));
  }
  writeGguf(path, metadata, tensors);
}

/** For q and k weights and biases: the heads their rows are permuted by (k: the key/value heads). */
function qkHeads(name: string, config: LlamaFamilyConfig): number | null {
  if (/\.self_attn\.q_proj\.(weight|bias)$/.test(name)) return config.num_attention_heads;
  if (/\.self_attn\.k_proj\.(weight|bias)$/.test(name)) return config.num_key_value_heads;
  return null;
}

function ggufTensor(name: string, tensor: Tensor, dtype: GgufDtype, heads: number | null): GgufTensor {
  const matrix = tensor.ndim === 2;
  const type = matrix ? GGML[dtype] : 'F32';
  const [rows, columns] = matrix ? tensor.shape : [tensor.shape[0], 1];
  const values = () => (heads === null ? floatValues(tensor) : toInterleaved(floatValues(tensor), rows, columns, heads));
  return { name, shape: tensor.shape, type, values };
}
