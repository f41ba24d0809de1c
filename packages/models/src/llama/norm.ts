/**
 * The two RMSNorms of the Llama family: core's (x̂·w, llama and most others) and
 * gemma's, which stores w and applies (1 + w), starting from w = 0.
 *
 *   x [..., C] -> x̂ = x / √(mean(x²) + eps) -> x̂·(1 + w)   (float32 throughout, as transformers computes it)
 */
import { Module, Parameter, Tensor } from '@lorakit/core';
import { RMSNorm } from '@lorakit/core/nn';
import { rmsNorm } from '@lorakit/core/ops';
import type { FamilyTraits } from './config.ts';

export class GemmaRMSNorm extends Module {
  weight: Parameter;

  constructor(readonly size: number, readonly eps = 1e-6) {
    super();
    this.weight = new Parameter(Tensor.zeros([size]));
  }

  forward(x: Tensor): Tensor {
    return rmsNorm(x, this.weight.add(1), this.eps);
  }

  override extraRepr(): string {
    return `(${this.size},), eps=${this.eps}`;
  }
}

export type FamilyNorm = RMSNorm | GemmaRMSNorm;

/** The family's norm over `size` features. */
export function familyNorm(traits: Pick<FamilyTraits, 'norm'>, size: number, eps: number): FamilyNorm {
  return traits.norm === 'gemma' ? new GemmaRMSNorm(size, eps) : new RMSNorm(size, eps);
}
