/**
 * Linear: y = x·Wᵀ + b, with W [out, in] as PyTorch stores it.
 *
 *   new Linear(576, 1536).call(x)   // x [..., 576] -> [..., 1536]
 *
 * Init as PyTorch: W ~ kaiming_uniform(a = √5) = U(±1/√in), b ~ U(±1/√in).
 * The input is flattened to [N, in] so the weight gradient is one GEMM.
 */
import { Module } from '../module.ts';
import { Parameter } from '../parameter.ts';
import { Tensor } from '../tensor.ts';
import { kaimingUniform_, uniform_ } from '../init.ts';
import { matmul } from '../ops/matmul.ts';
import { formatShape } from '../shape.ts';

export class Linear extends Module {
  weight: Parameter;
  bias: Parameter | null;

  constructor(readonly inFeatures: number, readonly outFeatures: number, { bias = true } = {}) {
    super();
    this.weight = new Parameter(kaimingUniform_(Tensor.zeros([outFeatures, inFeatures]), { a: Math.sqrt(5) }));
    const bound = inFeatures > 0 ? 1 / Math.sqrt(inFeatures) : 0;
    this.bias = bias ? new Parameter(uniform_(Tensor.zeros([outFeatures]), -bound, bound)) : null;
  }

  forward(x: Tensor): Tensor {
    if (x.shape[x.ndim - 1] !== this.inFeatures) {
      throw new Error(`Linear(${this.inFeatures}, ${this.outFeatures}): input ${formatShape(x.shape)} does not end in ${this.inFeatures}`);
    }
    const flat = x.reshape([-1, this.inFeatures]); // [N, in]
    let y = matmul(flat, this.weight, { transposeB: true }); // [N, out]
    if (this.bias !== null) y = y.add(this.bias);
    return y.reshape([...x.shape.slice(0, -1), this.outFeatures]);
  }

  override extraRepr(): string {
    return `in_features=${this.inFeatures}, out_features=${this.outFeatures}, bias=${this.bias !== null}`;
  }
}
