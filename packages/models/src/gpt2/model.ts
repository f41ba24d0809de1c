/**
 * GPT2LMHeadModel with transformers' names (transformer.h.N.attn.c_attn, ...).
 *
 *   ids [B, T] -> wte + wpe -> h × N (pre-norm attention and MLP) -> ln_f -> lm_head
 *
 * Multi-head attention without rotary positions; the output head shares wte.
 * NOTE: dropout on the attention probabilities (attn_pdrop) is not applied;
 * embedding and residual dropout are.
 */
import { Module, Tensor } from '@lorakit/core';
import { Dropout, Embedding, GELU, LayerNorm, Linear, ReLU } from '@lorakit/core/nn';
import { concat, scaledDotProductAttention, split } from '@lorakit/core/ops';
import type { GPT2Config } from './config.ts';
import { Conv1D } from '@lorakit/core/nn';
import type { LayerCache } from '../llama/attention.ts';
import { CausalLM, KVCache, causalBias, runLayer, headOutput, checkInputIds, positionsOf, type CausalLMInputs, type CausalLMOutput, type LayerContext } from '../causal-lm.ts';

type Pdrop = { resid_pdrop?: number; embd_pdrop?: number };

export class GPT2Attention extends Module {
  c_attn: Conv1D;
  c_proj: Conv1D;
  resid_dropout: Dropout;
  readonly heads: number;
  readonly scale: number;

  constructor(config: GPT2Config) {
    super();
    this.c_attn = new Conv1D(config.n_embd, 3 * config.n_embd);
    this.c_proj = new Conv1D(config.n_embd, config.n_embd);
    this.resid_dropout = new Dropout((config as Pdrop).resid_pdrop ?? 0.1);
    this.heads = config.n_head;
    this.scale = config.scale_attn_weights ? 1 / Math.sqrt(config.n_embd / config.n_head) : 1;
  }

  forward(x: Tensor, bias: Tensor, cache: LayerCache | null): Tensor {
    const [b, t, c] = x.shape;
    const d = c / this.heads;
    const heads = (y: Tensor) => y.reshape([b, t, this.heads, d]).transpose(1, 2); // [B, H, T, D]
    let [q, k, v] = split(this.c_attn.call(x), [c, c, c], -1).map(heads);
    if (cache !== null) {
      if (cache.key && cache.value) {
        k = concat([cache.key, k], 2);
        v = concat([cache.value, v], 2);
      }
      cache.key = k;
      cache.value = v;
    }
    const o = scaledDotProductAttention(q, k, v, { bias, scale: this.scale });
    return this.resid_dropout.call(this.c_proj.call(o.transpose(1, 2).reshape([b, t, c])));
  }
}

const activations = { gelu_new: () => new GELU('tanh'), gelu_pytorch_tanh: () => new GELU('tanh'), gelu: () => new GELU(), relu: () => new ReLU() };

export class GPT2MLP extends Module {
  c_fc: Conv1D;
  c_proj: Conv1D;
  act: Module & { forward(x: Tensor): Tensor };
  dropout: Dropout;

  constructor(config: GPT2Config) {
    super();
    this.c_fc = new Conv1D(config.n_embd, config.n_inner);
    this.c_proj = new Conv1D(config.n_inner, config.n_embd);
    this.act = activations[config.activation_function]();
    this.dropout = new Dropout((config as Pdrop).resid_pdrop ?? 0.1);
  }

  forward(x: Tensor): Tensor {
    return this.dropout.call(this.c_proj.call(this.act.call(this.c_fc.call(x))));
  }
}

export class GPT2Block extends Module {
  ln_1: LayerNorm;
  attn: GPT2Attention;
  ln_2: LayerNorm;
  mlp: GPT2MLP;

  constructor(config: GPT2Config) {
    super();
    this.ln_1 = new LayerNorm(config.n_embd, config.layer_norm_epsilon);
    this.attn = new GPT2Attention(config);
    this.ln_2 = new LayerNorm(config.n_embd, config.layer_norm_epsilon);
    this.mlp = new GPT2MLP(config);
  }

  forward(x: Tensor, bias: Tensor, cache: LayerCache | null): Tensor {
    const h = x.add(this.attn.call(this.ln_1.call(x), bias, cache));
    return h.add(this.mlp.call(this.ln_2.call(h)));
  }
}

export class GPT2Model extends Module {
  wte: Embedding;
  wpe: Embedding;
  drop: Dropout;
  h: GPT2Block[];
  ln_f: LayerNorm;
  /** Recompute each block in the backward instead of keeping its activations (training only). */
  gradientCheckpointing = false;
  /** Run each block as compiled sessions (runLayer). */
  compiledLayers = false;

  constructor(readonly config: GPT2Config) {
    super();
    this.wte = new Embedding(config.vocab_size, config.n_embd);
    this.wpe = new Embedding(config.n_positions, config.n_embd);
    this.drop = new Dropout((config as Pdrop).embd_pdrop ?? 0.1);
    this.h = Array.from({ length: config.n_layer }, () => new GPT2Block(config));
    this.ln_f = new LayerNorm(config.n_embd, config.layer_norm_epsilon);
  }

  /** The positions (checked against n_positions) and the mask of one forward; no ropes. */
  private context({ inputIds, attentionMask, positionIds }: CausalLMInputs, past: number): LayerContext {
    const positions = positionsOf(inputIds, positionIds, past);
    if (positions.flat().some((p) => p >= this.config.n_positions)) throw new Error(`GPT-2: positions reach ${past + inputIds.shape[1]}, beyond n_positions ${this.config.n_positions}`);
    const bias = causalBias(inputIds, attentionMask, past);
    return {
      rotary: () => { throw new Error('GPT-2 has no rotary positions'); },
      bias: () => bias,
      positions: () => Tensor.fromArray(positions, 'int32'),
    };
  }

  forward(inputs: CausalLMInputs): Tensor {
    const { inputIds, cache } = inputs;
    checkInputIds(inputIds, this.config.vocab_size);
    const context = inputs.context ?? this.context(inputs, cache?.length ?? 0);
    let h = this.drop.call(this.wte.call(inputIds).add(this.wpe.call(context.positions()))); // [B, T, C]
    const bias = context.bias(null);
    this.h.forEach((block, i) => {
      const layerCache = cache?.layers[i] ?? null;
      h = runLayer(this, h, layerCache, block, () => [bias], (x) => block.call(x, bias, layerCache));
    });
    return this.ln_f.call(h);
  }
}

export class GPT2LMHeadModel extends CausalLM {
  transformer: GPT2Model;
  lm_head: Linear;

  constructor(readonly config: GPT2Config) {
    super();
    this.transformer = new GPT2Model(config);
    this.lm_head = new Linear(config.n_embd, config.vocab_size, { bias: false });
    if (config.tie_word_embeddings) this.lm_head.weight = this.transformer.wte.weight;
  }

  forward(inputs: CausalLMInputs): CausalLMOutput {
    return headOutput(this.lm_head, this.transformer.call(inputs), inputs);
  }

  tiedWeights(): Array<[string, string]> {
    return this.config.tie_word_embeddings ? [['lm_head.weight', 'transformer.wte.weight']] : [];
  }

  enableGradientCheckpointing(on = true): void {
    this.transformer.gradientCheckpointing = on;
  }

  enableCompiledLayers(on = true): void {
    this.transformer.compiledLayers = on;
  }

  outputEmbeddingsName(): string {
    return 'lm_head';
  }

  newCache(): KVCache {
    return new KVCache(this.config.n_layer);
  }
}
