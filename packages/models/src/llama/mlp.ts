/**
 * LlamaMLP (SwiGLU): down_proj(act(gate_proj(x)) · up_proj(x)).
 *
 *   x [B, T, C] -> gate, up [B, T, I] -> [B, T, C]
 */
import { Module, type Tensor } from '@lorakit/core';
import { Linear } from '@lorakit/core/nn';
import { gelu, relu, silu, swiglu } from '@lorakit/core/ops';
import type { LlamaLayerConfig } from './config.ts';

const activations = {
  silu: (x: Tensor) => silu(x),
  gelu: (x: Tensor) => gelu(x),
  gelu_pytorch_tanh: (x: Tensor) => gelu(x, 'tanh'),
  relu: (x: Tensor) => relu(x),
};

export class LlamaMLP extends Module {
  gate_proj: Linear;
  up_proj: Linear;
  down_proj: Linear;
  readonly act: (x: Tensor) => Tensor;

  constructor(config: LlamaLayerConfig) {
    super();
    const bias = config.mlp_bias;
    this.gate_proj = new Linear(config.hidden_size, config.intermediate_size, { bias });
    this.up_proj = new Linear(config.hidden_size, config.intermediate_size, { bias });
    this.down_proj = new Linear(config.intermediate_size, config.hidden_size, { bias });
    this.act = activations[config.hidden_act];
  }

  forward(x: Tensor): Tensor {
    const gate = this.gate_proj.call(x);
    const up = this.up_proj.call(x);
    const hidden = this.act === activations.silu ? swiglu(gate, up) : this.act(gate).mul(up); // [B, T, I]
    return this.down_proj.call(hidden);
  }
}
