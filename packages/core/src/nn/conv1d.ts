/**
 * GPT-2's Conv1D (transformers.pytorch_utils.Conv1D): a linear layer whose
 * weight is stored [in, out], the transpose of nn.Linear's. Kept that way so
 * keys and shapes match GPT-2 checkpoints; LoRA knows it as fan_in_fan_out.
 *
 *   y = x·W + b,  x [..., in], W [in, out] -> [..., out]
 */
import { Module } from '../module.ts';
import { Parameter } from '../parameter.ts';
import { Tensor } from '../tensor.ts';
import { formatShape } from '../shape.ts';
import * as init from '../init.ts';
import { matmul } from '../ops/matmul.ts';

export class Conv1D extends Module {
  weight: Parameter;
  bias: Parameter;

  constructor(readonly inFeatures: number, readonly outFeatures: number) {
    super();
    this.weight = new Parameter(init.normal_(Tensor.zeros([inFeatures, outFeatures]), 0, 0.02));
    this.bias = new Parameter(Tensor.zeros([outFeatures]));
  }

  forward(x: Tensor): Tensor {
    if (x.shape[x.ndim - 1] !== this.inFeatures) throw new Error(`Conv1D(${this.inFeatures}, ${this.outFeatures}): input ${formatShape(x.shape)} does not end in ${this.inFeatures}`);
    const y = matmul(x.reshape([-1, this.inFeatures]), this.weight).add(this.bias); // [N, out]
    return y.reshape([...x.shape.slice(0, -1), this.outFeatures]);
  }

  override extraRepr(): string {
    return `nf=${this.outFeatures}, nx=${this.inFeatures}`;
  }
}
