/**
 * LlamaAttention: grouped-query self-attention with rotary positions.
 *
 *   x [B, T, C] -> q [B, T, H·D], k/v [B, T, Hkv·D]
 *   qwen3: q, k <- q_norm(q), k_norm(k), RMSNorm over each head's D
 *   o = softmax(scale·rope(q)·cat(cache, rope(k))ᵀ + mask)·cat(cache, v) -> [B, T, H·D]
 *   -> o_proj -> [B, T, C]
 * scale is 1/√D (granite: attention_multiplier); a NoPE layer (smollm3) leaves q and k unrotated.
 * The attention itself is one fused native op (core's rotaryAttention).
 */
import { Module, type Tensor } from '@lorakit/core';
import { Linear, RMSNorm } from '@lorakit/core/nn';
import { rotaryAttention } from '@lorakit/core/ops';
import type { LlamaLayerConfig } from './config.ts';
import { unrotated, type RotaryTables } from '../rope.ts';

export type { RotaryTables };

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
  q_norm: RMSNorm | null;
  k_norm: RMSNorm | null;
  readonly heads: number;
  readonly kvHeads: number;
  readonly headDim: number;
  readonly rope: boolean;
  readonly scale: number;

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
    this.q_norm = config.qk_norm ? new RMSNorm(this.headDim, config.rms_norm_eps) : null;
    this.k_norm = config.qk_norm ? new RMSNorm(this.headDim, config.rms_norm_eps) : null;
    this.rope = config.rope;
    this.scale = config.attention_scale;
  }

  /** [B, T, n·D] through a per-head norm (qwen3's q_norm / k_norm), or as is. */
  private perHead(x: Tensor, norm: RMSNorm | null): Tensor {
    if (norm === null) return x;
    const [b, t, width] = x.shape;
    return norm.call(x.reshape([b, t, width / this.headDim, this.headDim])).reshape([b, t, width]);
  }

  forward(x: Tensor, rotary: RotaryTables, bias: Tensor, cache: LayerCache | null = null): Tensor {
    const q = this.perHead(this.q_proj.call(x), this.q_norm);
    const k = this.perHead(this.k_proj.call(x), this.k_norm);
    const { cos, sin } = this.rope ? rotary : unrotated(rotary);
    const { out, key, value } = rotaryAttention(q, k, this.v_proj.call(x), {
      heads: this.heads,
      kvHeads: this.kvHeads,
      headDim: this.headDim,
      cos,
      sin,
      bias,
      scale: this.scale,
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
