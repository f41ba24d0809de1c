/** RMSNorm and LayerNorm over the last axis, with PyTorch's names and inits (weight 1, bias 0). */
import { Module } from '../module.ts';
import { Parameter } from '../parameter.ts';
import { Tensor } from '../tensor.ts';
import { layerNorm, rmsNorm } from '../ops/norm.ts';

export class RMSNorm extends Module {
  weight: Parameter;

  constructor(readonly size: number, readonly eps = 1e-6) {
    super();
    this.weight = new Parameter(Tensor.ones([size]));
  }

  forward(x: Tensor): Tensor {
    return rmsNorm(x, this.weight, this.eps);
  }

  override extraRepr(): string {
    return `(${this.size},), eps=${this.eps}`;
  }
}

export class LayerNorm extends Module {
  weight: Parameter | null;
  bias: Parameter | null;

  constructor(readonly size: number, readonly eps = 1e-5, { elementwiseAffine = true, bias = true } = {}) {
    super();
    this.weight = elementwiseAffine ? new Parameter(Tensor.ones([size])) : null;
    this.bias = elementwiseAffine && bias ? new Parameter(Tensor.zeros([size])) : null;
  }

  forward(x: Tensor): Tensor {
    return layerNorm(x, this.weight, this.bias, this.eps);
  }

  override extraRepr(): string {
    return `(${this.size},), eps=${this.eps}, elementwise_affine=${this.weight !== null}`;
  }
}
