/**
 * LlamaDecoderLayer: two residual blocks, normalized where the family normalizes.
 *
 *   pre (llama and most):  h = x + m·self_attn(input_layernorm(x));  y = h + m·mlp(post_attention_layernorm(h))
 *   sandwich (gemma2/3):   h = x + post_attention_layernorm(self_attn(input_layernorm(x)))
 *                          y = h + post_feedforward_layernorm(mlp(pre_feedforward_layernorm(h)))
 *   post (olmo2):          h = x + post_attention_layernorm(self_attn(x));  y = h + post_feedforward_layernorm(mlp(h))
 * m = residual_multiplier (granite), else 1. Property names are transformers' own: llama's
 * post_attention_layernorm comes before the MLP, gemma2's and olmo2's after the attention.
 */
import { Module, type Tensor } from '@lorakit/core';
import { LlamaAttention, type LayerCache, type LayerContext } from './attention.ts';
import { LlamaMLP } from './mlp.ts';
import { familyNorm, type FamilyNorm } from './norm.ts';
import type { LlamaLayerConfig } from './config.ts';

/** Each sublayer's input and output norm, by the property that holds it. */
const PLACEMENTS = {
  pre: { attentionIn: 'input_layernorm', attentionOut: null, mlpIn: 'post_attention_layernorm', mlpOut: null },
  sandwich: { attentionIn: 'input_layernorm', attentionOut: 'post_attention_layernorm', mlpIn: 'pre_feedforward_layernorm', mlpOut: 'post_feedforward_layernorm' },
  post: { attentionIn: null, attentionOut: 'post_attention_layernorm', mlpIn: null, mlpOut: 'post_feedforward_layernorm' },
} as const;

type NormName = 'input_layernorm' | 'post_attention_layernorm' | 'pre_feedforward_layernorm' | 'post_feedforward_layernorm';

export class LlamaDecoderLayer extends Module {
  self_attn: LlamaAttention;
  mlp: LlamaMLP;
  input_layernorm: FamilyNorm | null = null;
  post_attention_layernorm: FamilyNorm | null = null;
  pre_feedforward_layernorm: FamilyNorm | null = null;
  post_feedforward_layernorm: FamilyNorm | null = null;
  readonly residualMultiplier: number;
  readonly placement: (typeof PLACEMENTS)[keyof typeof PLACEMENTS];

  constructor(config: LlamaLayerConfig) {
    super();
    this.self_attn = new LlamaAttention(config);
    this.mlp = new LlamaMLP(config);
    this.placement = PLACEMENTS[config.norms];
    for (const name of Object.values(this.placement)) if (name !== null) this[name] = familyNorm(config, config.hidden_size, config.rms_norm_eps);
    this.residualMultiplier = config.residual_multiplier;
  }

  /** x + m·out(sublayer(in(x))), each norm where the family has one. */
  private block(x: Tensor, normIn: NormName | null, sublayer: (x: Tensor) => Tensor, normOut: NormName | null): Tensor {
    let y = sublayer(normIn ? this[normIn]!.call(x) : x);
    if (normOut) y = this[normOut]!.call(y);
    return x.add(this.residualMultiplier === 1 ? y : y.mul(this.residualMultiplier));
  }

  /** The tensors of `context` this layer's forward reads: its rope's tables and its mask. */
  contextInputs(context: LayerContext): Tensor[] {
    const { rope, sliding_window } = this.self_attn.config;
    const { cos, sin } = context.rotary(rope);
    return [cos, sin, context.bias(sliding_window)];
  }

  forward(x: Tensor, context: LayerContext, cache: LayerCache | null = null): Tensor {
    const { attentionIn, attentionOut, mlpIn, mlpOut } = this.placement;
    const h = this.block(x, attentionIn, (y) => this.self_attn.call(y, context, cache), attentionOut);
    return this.block(h, mlpIn, (y) => this.mlp.call(y), mlpOut);
  }
}
