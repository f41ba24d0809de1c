/**
 * LlamaDecoderLayer: pre-norm residual blocks.
 *
 *   h = x + self_attn(input_layernorm(x))
 *   y = h + mlp(post_attention_layernorm(h))
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

  constructor(config: LlamaLayerConfig) {
    super();
    this.self_attn = new LlamaAttention(config);
    this.mlp = new LlamaMLP(config);
    this.input_layernorm = new RMSNorm(config.hidden_size, config.rms_norm_eps);
    this.post_attention_layernorm = new RMSNorm(config.hidden_size, config.rms_norm_eps);
  }

  forward(x: Tensor, rotary: RotaryTables, bias: Tensor, cache: LayerCache | null = null): Tensor {
    const h = x.add(this.self_attn.call(this.input_layernorm.call(x), rotary, bias, cache));
    return h.add(this.mlp.call(this.post_attention_layernorm.call(h)));
  }
}
