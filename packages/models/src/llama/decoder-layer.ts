/**
 * LlamaDecoderLayer: pre-norm residual blocks.
 *
 *   h = x + m·self_attn(input_layernorm(x))
 *   y = h + m·mlp(post_attention_layernorm(h))
 * m = residual_multiplier (granite), else 1.
 */
import { Module, type Tensor } from '@lorakit/core';
import { RMSNorm } from '@lorakit/core/nn';
import { LlamaAttention, type LayerCache, type RotaryTables } from './attention.ts';
import { LlamaMLP } from './mlp.ts';
import type { LlamaLayerConfig } from './config.ts';

export class LlamaDecoderLayer extends Module {
  self_attn: LlamaAttention;
  mlp: LlamaMLP;
  input_layernorm: RMSNorm;
  post_attention_layernorm: RMSNorm;
  readonly residualMultiplier: number;

  constructor(config: LlamaLayerConfig) {
    super();
    this.self_attn = new LlamaAttention(config);
    this.mlp = new LlamaMLP(config);
    this.input_layernorm = new RMSNorm(config.hidden_size, config.rms_norm_eps);
    this.post_attention_layernorm = new RMSNorm(config.hidden_size, config.rms_norm_eps);
    this.residualMultiplier = config.residual_multiplier;
  }

  private residual(x: Tensor, sublayer: Tensor): Tensor {
    return x.add(this.residualMultiplier === 1 ? sublayer : sublayer.mul(this.residualMultiplier));
  }

  forward(x: Tensor, rotary: RotaryTables, bias: Tensor, cache: LayerCache | null = null): Tensor {
    const h = this.residual(x, this.self_attn.call(this.input_layernorm.call(x), rotary, bias, cache));
    return this.residual(h, this.mlp.call(this.post_attention_layernorm.call(h)));
  }
}
