/**
 * LlamaAttention: grouped-query self-attention with rotary positions.
 *
 *   x [B, T, C] -> q [B, T, H·D], k/v [B, T, Hkv·D]    (q_proj, k_proj, v_proj, or phi3's one qkv_proj)
 *   q, k <- q_norm(q), k_norm(k): RMSNorm over each head's D (qwen3, gemma3) or the whole projection (olmo2)
 *   o = softmax(cap(scale·rope(q)·cat(cache, rope(k))ᵀ) + mask)·cat(cache, v) -> [B, T, H·D]
 *   -> o_proj -> [B, T, C]
 * scale is 1/√D (granite: attention_multiplier; gemma2/3: query_pre_attn_scalar^-½); rope turns the first
 * rotary_dim dims of each head (phi3: partial rotary), none in a NoPE layer (smollm3); cap is gemma2's softcap,
 * which transformers computes only in its eager attention: there a query that sees no key (left padding)
 * averages all values, where the default sdpa path outputs zeros, and so does this one;
 * the mask hides keys beyond the layer's sliding window.
 * The attention itself is one fused native op (core's rotaryAttention).
 */
import { Module, type Tensor } from '@lorakit/core';
import { Linear } from '@lorakit/core/nn';
import { rotaryAttention, split } from '@lorakit/core/ops';
import type { LlamaLayerConfig } from './config.ts';
import { familyNorm, type FamilyNorm } from './norm.ts';
import type { RotaryTables } from '../rope.ts';
import type { LayerContext } from '../causal-lm.ts';

export type { RotaryTables, LayerContext };

/** Rotated keys and values of earlier positions, per layer, for generation. */
export interface LayerCache {
  key: Tensor | null; // [B, Hkv, P, D]
  value: Tensor | null;
}

export class LlamaAttention extends Module {
  q_proj: Linear | null;
  k_proj: Linear | null;
  v_proj: Linear | null;
  qkv_proj: Linear | null;
  o_proj: Linear;
  q_norm: FamilyNorm | null;
  k_norm: FamilyNorm | null;
  readonly heads: number;
  readonly kvHeads: number;
  readonly headDim: number;
  readonly config: LlamaLayerConfig;

  constructor(config: LlamaLayerConfig) {
    super();
    this.config = config;
    const { hidden_size: c, num_attention_heads: heads, num_key_value_heads: kvHeads, head_dim: d, qkv_bias: bias } = config;
    [this.heads, this.kvHeads, this.headDim] = [heads, kvHeads, d];
    this.q_proj = config.fused ? null : new Linear(c, heads * d, { bias });
    this.k_proj = config.fused ? null : new Linear(c, kvHeads * d, { bias });
    this.v_proj = config.fused ? null : new Linear(c, kvHeads * d, { bias });
    this.qkv_proj = config.fused ? new Linear(c, (heads + 2 * kvHeads) * d, { bias }) : null;
    this.o_proj = new Linear(heads * d, c, { bias: config.o_bias });
    const normed = config.qkNorm === 'head' ? [d, d] : config.qkNorm === 'projection' ? [heads * d, kvHeads * d] : null;
    this.q_norm = normed ? familyNorm(config, normed[0], config.rms_norm_eps) : null;
    this.k_norm = normed ? familyNorm(config, normed[1], config.rms_norm_eps) : null;
  }

  /** q [B, T, H·D], k and v [B, T, Hkv·D] */
  private project(x: Tensor): [Tensor, Tensor, Tensor] {
    if (this.qkv_proj === null) return [this.q_proj!.call(x), this.k_proj!.call(x), this.v_proj!.call(x)];
    const kv = this.kvHeads * this.headDim;
    return split(this.qkv_proj.call(x), [this.heads * this.headDim, kv, kv], -1) as [Tensor, Tensor, Tensor];
  }

  /** [B, T, n·D] through q_norm or k_norm: per head (as [B, T, n, D]) or over the whole projection. */
  private normed(x: Tensor, norm: FamilyNorm | null): Tensor {
    if (norm === null || this.config.qkNorm === 'projection') return norm?.call(x) ?? x;
    const [b, t, width] = x.shape;
    return norm.call(x.reshape([b, t, width / this.headDim, this.headDim])).reshape([b, t, width]);
  }

  forward(x: Tensor, context: LayerContext, cache: LayerCache | null = null): Tensor {
    const [q, k, v] = this.project(x);
    const { rope, sliding_window, rotary_dim, attn_softcap, attention_scale } = this.config;
    const { cos, sin } = context.rotary(rope);
    const { out, key, value } = rotaryAttention(this.normed(q, this.q_norm), this.normed(k, this.k_norm), v, {
      heads: this.heads,
      kvHeads: this.kvHeads,
      headDim: this.headDim,
      cos,
      sin,
      rotaryDim: rotary_dim,
      softcap: attn_softcap,
      unseenRows: attn_softcap === null ? 'zero' : 'uniform',
      bias: context.bias(sliding_window),
      scale: attention_scale,
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
