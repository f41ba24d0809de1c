/**
 * LlamaAttention: grouped-query self-attention with rotary positions.
 *
 *   x [B, T, C] -> q [B, T, H·D], k/v [B, T, Hkv·D]
 *   o = attention(rope(q), cat(cache, rope(k)), cat(cache, v)) -> [B, T, H·D]
 *   -> o_proj -> [B, T, C]
 * The attention itself is one fused native op (core's rotaryAttention).
 */
import { Module, type Tensor } from '@lorakit/core';
import { Linear } from '@lorakit/core/nn';
import { rotaryAttention } from '@lorakit/core/ops';
import type { LlamaLayerConfig } from './config.ts';

export interface RotaryTables {
  cos: Tensor; // [B|1, 1, T, D]
  sin: Tensor;
}

/** Rotated keys and values of earlier positions, per layer, for generation. */
export interface LayerCache {
  key: Tensor | null; // [B, Hkv, P, D]
  value: Tensor | null;
}

export class LlamaAttention extends Module {
  q_proj: Linear;
  k_proj: Linear;
  v_proj: Linear;
  o_proj: Linear;
  readonly heads: number;
  readonly kvHeads: number;
  readonly headDim: number;

  constructor(config: LlamaLayerConfig) {
    super();
    this.heads = config.num_attention_heads;
    this.kvHeads = config.num_key_value_heads;
    this.headDim = config.head_dim;
    const bias = config.qkv_bias;
    this.q_proj = new Linear(config.hidden_size, this.heads * this.headDim, { bias });
    this.k_proj = new Linear(config.hidden_size, this.kvHeads * this.headDim, { bias });
    this.v_proj = new Linear(config.hidden_size, this.kvHeads * this.headDim, { bias });
    this.o_proj = new Linear(this.heads * this.headDim, config.hidden_size, { bias: config.o_bias });
  }

  forward(x: Tensor, rotary: RotaryTables, bias: Tensor, cache: LayerCache | null = null): Tensor {
    const { out, key, value } = rotaryAttention(this.q_proj.call(x), this.k_proj.call(x), this.v_proj.call(x), {
      heads: this.heads,
      kvHeads: this.kvHeads,
      headDim: this.headDim,
      cos: rotary.cos,
      sin: rotary.sin,
      bias,
      pastKey: cache?.key,
      pastValue: cache?.value,
    });
    if (cache !== null) {
      cache.key = key;
      cache.value = value;
    }
    return this.o_proj.call(out);
  }
}
