/**
 * LlamaMLP, gated: down_proj(act(gate) · up), SwiGLU for silu, GeGLU for gemma's gelu_pytorch_tanh.
 *
 *   x [B, T, C] -> gate, up [B, T, I] -> [B, T, C]
 * gate and up come from gate_proj and up_proj, or from phi3's one gate_up_proj [2I, C] (gate first).
 */
import { Module, type Tensor } from '@lorakit/core';
import { Linear } from '@lorakit/core/nn';
import { gelu, relu, silu, split, swiglu } from '@lorakit/core/ops';
import type { LlamaLayerConfig } from './config.ts';

const activations = {
  silu: (x: Tensor) => silu(x),
  gelu: (x: Tensor) => gelu(x),
  gelu_pytorch_tanh: (x: Tensor) => gelu(x, 'tanh'),
  relu: (x: Tensor) => relu(x),
};

export class LlamaMLP extends Module {
  gate_proj: Linear | null;
  up_proj: Linear | null;
  gate_up_proj: Linear | null;
  down_proj: Linear;
  /** config.hidden_act (hidden_activation for gemma2/3), and the function computing it. */
  readonly activation: LlamaLayerConfig['hidden_act'];
  readonly act: (x: Tensor) => Tensor;
  readonly intermediate: number;

  constructor(config: LlamaLayerConfig) {
    super();
    const [c, i, bias] = [config.hidden_size, config.intermediate_size, config.mlp_bias];
    this.gate_proj = config.fused ? null : new Linear(c, i, { bias });
    this.up_proj = config.fused ? null : new Linear(c, i, { bias });
    this.gate_up_proj = config.fused ? new Linear(c, 2 * i, { bias }) : null;
    this.down_proj = new Linear(i, c, { bias });
    this.activation = config.hidden_act;
    this.act = activations[config.hidden_act];
    this.intermediate = i;
  }

  forward(x: Tensor): Tensor {
    const [gate, up] = this.gate_up_proj ? split(this.gate_up_proj.call(x), [this.intermediate, this.intermediate], -1) : [this.gate_proj!.call(x), this.up_proj!.call(x)];
    const hidden = this.act === activations.silu ? swiglu(gate, up) : this.act(gate).mul(up); // [B, T, I]
    return this.down_proj.call(hidden);
  }
}
