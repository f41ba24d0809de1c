/**
 * The modules and tensors a config describes, without building the model:
 * what a checkpoint for it must hold, for readers that never allocate the
 * float32 weights (the streaming merge) and for loading alike.
 *
 *   const layout = weightLayout(await loadConfig('models/base'));
 *   layout.tensors.get('model.layers.0.self_attn.q_proj.weight')  // [4096, 4096]
 *   layout.modules[5]  // { name: 'model.layers.0.self_attn.q_proj', type: 'Linear', tensors: [['weight', [4096, 4096]]] }
 *
 * It mirrors the module tree of llama/, gemma3/ and gpt2/ (names, classes, shapes, in
 * namedModules() order); loadWeights compares it with the real model at every
 * load (checkLayoutMatches), so the two cannot drift apart unnoticed.
 */
import type { Module } from '@lorakit/core';
import type { ModelConfig } from './config.ts';
import { FAMILY_TRAITS, layerConfig, type LlamaFamilyConfig, type NormPlacement } from './llama/config.ts';
import type { GPT2Config } from './gpt2/config.ts';
import type { Gemma3Config } from './gemma3/config.ts';
import { checkpointKeys, type CheckpointKeys } from './checkpoint-keys.ts';

export interface LayoutModule {
  /** Its path in the model, as namedModules() gives it ('' for the model itself). */
  name: string;
  /** The class the model uses for it: Linear, Conv1D, Embedding, RMSNorm, LlamaAttention, ... */
  type: string;
  /** Its own parameters: local name and shape (Linear [out, in], Conv1D [in, out]). */
  tensors: Array<[string, number[]]>;
}

export interface WeightLayout {
  modelType: ModelConfig['model_type'];
  modules: LayoutModule[];
  /** Every tensor of the model, by name, in model order; tied copies left out. A checkpoint stores each under keys.storedOf(name). */
  tensors: Map<string, number[]>;
  /** Tied copy -> the tensor it shares (tie_word_embeddings). */
  tied: Map<string, string>;
  /** The output head (never targeted by "all-linear"). */
  head: string;
  /** How a checkpoint's keys name these tensors (checkpoint-keys.ts). */
  keys: CheckpointKeys;
}

type Builder = (name: string, type: string, tensors?: Array<[string, number[]]>) => void;

const linear = (out: number, inp: number, bias: boolean): Array<[string, number[]]> => [['weight', [out, inp]], ...(bias ? [['bias', [out]] as [string, number[]]] : [])];
const conv1d = (inp: number, out: number): Array<[string, number[]]> => [['weight', [inp, out]], ['bias', [out]]];

function llamaModules(c: LlamaFamilyConfig, add: Builder): void {
  add('', 'LlamaForCausalLM');
  decoderModules(c, 'model', add);
  add('lm_head', 'Linear', linear(c.vocab_size, c.hidden_size, false));
}

/** Gemma 3's multimodal model without its vision part (gemma3/model.ts). */
function gemma3Modules(c: Gemma3Config, add: Builder): void {
  add('', 'Gemma3ForConditionalGeneration');
  add('model', 'Gemma3Model');
  decoderModules(c.text_config, 'model.language_model', add);
  add('lm_head', 'Linear', linear(c.text_config.vocab_size, c.text_config.hidden_size, false));
}

/** The Llama decoder (llama/model.ts's LlamaModel) at `at`. */
function decoderModules(c: LlamaFamilyConfig, at: string, add: Builder): void {
  const [h, q, kv, i] = [c.hidden_size, c.num_attention_heads * c.head_dim, c.num_key_value_heads * c.head_dim, c.intermediate_size];
  const norm = FAMILY_TRAITS[c.model_type].norm === 'gemma' ? 'GemmaRMSNorm' : 'RMSNorm';
  add(at, 'LlamaModel');
  add(`${at}.embed_tokens`, 'Embedding', [['weight', [c.vocab_size, h]]]);
  for (let n = 0; n < c.num_hidden_layers; n++) {
    const p = `${at}.layers.${n}`;
    const layer = layerConfig(c, n);
    add(p, 'LlamaDecoderLayer');
    add(`${p}.self_attn`, 'LlamaAttention');
    if (layer.fused) add(`${p}.self_attn.qkv_proj`, 'Linear', linear(q + 2 * kv, h, layer.qkv_bias));
    else for (const [name, out] of [['q_proj', q], ['k_proj', kv], ['v_proj', kv]] as const) add(`${p}.self_attn.${name}`, 'Linear', linear(out, h, layer.qkv_bias));
    add(`${p}.self_attn.o_proj`, 'Linear', linear(h, q, layer.o_bias));
    const normed = { none: [], head: [c.head_dim, c.head_dim], projection: [q, kv] }[layer.qkNorm];
    normed.forEach((size, k) => add(`${p}.self_attn.${['q_norm', 'k_norm'][k]}`, norm, [['weight', [size]]]));
    add(`${p}.mlp`, 'LlamaMLP');
    if (layer.fused) add(`${p}.mlp.gate_up_proj`, 'Linear', linear(2 * i, h, layer.mlp_bias));
    else for (const name of ['gate_proj', 'up_proj']) add(`${p}.mlp.${name}`, 'Linear', linear(i, h, layer.mlp_bias));
    add(`${p}.mlp.down_proj`, 'Linear', linear(h, i, layer.mlp_bias));
    for (const name of LAYER_NORMS[layer.norms]) add(`${p}.${name}`, norm, [['weight', [h]]]);
  }
  add(`${at}.norm`, norm, [['weight', [h]]]);
}

/** A decoder layer's norms in declaration order (decoder-layer.ts). */
const LAYER_NORMS: Record<NormPlacement, string[]> = {
  pre: ['input_layernorm', 'post_attention_layernorm'],
  sandwich: ['input_layernorm', 'post_attention_layernorm', 'pre_feedforward_layernorm', 'post_feedforward_layernorm'],
  post: ['post_attention_layernorm', 'post_feedforward_layernorm'],
};

const GPT2_ACTIVATIONS: Record<GPT2Config['activation_function'], string> = { gelu_new: 'GELU', gelu_pytorch_tanh: 'GELU', gelu: 'GELU', relu: 'ReLU' };

function gpt2Modules(c: GPT2Config, add: Builder): void {
  const h = c.n_embd;
  const norm = (name: string) => add(name, 'LayerNorm', [['weight', [h]], ['bias', [h]]]);
  add('', 'GPT2LMHeadModel');
  add('transformer', 'GPT2Model');
  add('transformer.wte', 'Embedding', [['weight', [c.vocab_size, h]]]);
  add('transformer.wpe', 'Embedding', [['weight', [c.n_positions, h]]]);
  add('transformer.drop', 'Dropout');
  for (let i = 0; i < c.n_layer; i++) {
    const p = `transformer.h.${i}`;
    add(p, 'GPT2Block');
    norm(`${p}.ln_1`);
    add(`${p}.attn`, 'GPT2Attention');
    add(`${p}.attn.c_attn`, 'Conv1D', conv1d(h, 3 * h));
    add(`${p}.attn.c_proj`, 'Conv1D', conv1d(h, h));
    add(`${p}.attn.resid_dropout`, 'Dropout');
    norm(`${p}.ln_2`);
    add(`${p}.mlp`, 'GPT2MLP');
    add(`${p}.mlp.c_fc`, 'Conv1D', conv1d(h, c.n_inner));
    add(`${p}.mlp.c_proj`, 'Conv1D', conv1d(c.n_inner, h));
    add(`${p}.mlp.act`, GPT2_ACTIVATIONS[c.activation_function]);
    add(`${p}.mlp.dropout`, 'Dropout');
  }
  norm('transformer.ln_f');
  add('lm_head', 'Linear', linear(c.vocab_size, h, false));
}

/** The layout of the model `config` describes; nothing is allocated but names and shapes. */
export function weightLayout(config: ModelConfig): WeightLayout {
  const modules: LayoutModule[] = [];
  const add: Builder = (name, type, tensors = []) => void modules.push({ name, type, tensors });
  if (config.model_type === 'gpt2') gpt2Modules(config, add);
  else if (config.model_type === 'gemma3') gemma3Modules(config, add);
  else llamaModules(config, add);
  const embedding = { gpt2: 'transformer.wte.weight', gemma3: 'model.language_model.embed_tokens.weight' }[config.model_type as string] ?? 'model.embed_tokens.weight';
  const tied = new Map<string, string>(config.tie_word_embeddings ? [['lm_head.weight', embedding]] : []);
  const tensors = new Map<string, number[]>();
  for (const m of modules) for (const [local, shape] of m.tensors) if (!tied.has(key(m.name, local))) tensors.set(key(m.name, local), shape);
  return { modelType: config.model_type, modules, tensors, tied, head: 'lm_head', keys: checkpointKeys(config.model_type) };
}

const key = (module: string, local: string) => (module === '' ? local : `${module}.${local}`);

/** The same description read off a built model (for checkLayoutMatches and tests). */
export function describeModel(model: Module): Array<[string, string]> {
  return model.namedModules().map(([name, m]) => [name, m.constructor.name]);
}

/**
 * Throws if `model` is not the module tree `layout` describes (a lorakit bug,
 * never a user error): same module names and classes in the same order, same
 * state dict keys and shapes, the same tied copies.
 */
export function checkLayoutMatches(layout: WeightLayout, model: Module & { tiedWeights(): Array<[string, string]> }): void {
  const modules = describeModel(model).map(([n, t]) => `${n}:${t}`);
  const described = layout.modules.map((m) => `${m.name}:${m.type}`);
  const tied = new Map(model.tiedWeights());
  const state = [...model.stateDict()].filter(([k]) => !tied.has(k)).map(([k, t]) => `${k}${JSON.stringify(t.shape)}`);
  const expected = [...layout.tensors].map(([k, s]) => `${k}${JSON.stringify(s)}`);
  const differs = (a: string[], b: string[]) => a.length !== b.length || a.some((x, i) => x !== b[i]);
  if (differs(modules, described) || differs(state, expected) || differs([...tied].map(String), [...layout.tied].map(String))) {
    const first = [modules.find((m, i) => m !== described[i]), state.find((s, i) => s !== expected[i])].filter(Boolean);
    throw new Error(`internal error: weightLayout disagrees with the ${layout.modelType} model (first difference: ${first.join(', ') || 'tied weights'}); please report this`);
  }
}
