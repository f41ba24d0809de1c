/**
 * AdamW (Loshchilov & Hutter), step for step as torch.optim.AdamW on the CPU
 * (its single-tensor path), each float32 operation rounded as PyTorch rounds it:
 *
 *   p ← p · (1 − lr·λ)                       decoupled weight decay
 *   m ← m + (1 − β1)(g − m)                  (lerp)
 *   v ← β2·v + (1 − β2)·g²
 *   p ← p − lr/(1 − β1ᵗ) · m / (√v / √(1 − β2ᵗ) + ε)
 */
import type { Parameter } from '../parameter.ts';
import { Optimizer, type ParamState } from './optimizer.ts';

const f = Math.fround;

export interface AdamWOptions {
  lr?: number;
  betas?: [number, number];
  eps?: number;
  weightDecay?: number;
}

export class AdamW extends Optimizer {
  readonly betas: [number, number];
  readonly eps: number;
  readonly weightDecay: number;

  constructor(params: Iterable<Parameter>, { lr = 1e-3, betas = [0.9, 0.999], eps = 1e-8, weightDecay = 0.01 }: AdamWOptions = {}) {
    super(params, lr);
    if (!betas.every((b) => b >= 0 && b < 1)) throw new Error(`AdamW: betas must be in [0, 1), got [${betas}]`);
    if (!(eps >= 0) || !(weightDecay >= 0)) throw new Error(`AdamW: eps and weightDecay must be >= 0, got ${eps} and ${weightDecay}`);
    this.betas = betas;
    this.eps = eps;
    this.weightDecay = weightDecay;
  }

  protected initBuffers(p: Parameter): Record<string, Float32Array> {
    return { exp_avg: new Float32Array(p.numel), exp_avg_sq: new Float32Array(p.numel) };
  }

  protected update(param: Float32Array, grad: Float32Array, { step, buffers }: ParamState): void {
    const [beta1, beta2] = this.betas;
    const m = buffers.exp_avg;
    const v = buffers.exp_avg_sq;
    const decay = f(1 - this.lr * this.weightDecay);
    const stepSize = f(this.lr / (1 - beta1 ** step));
    const correction2Sqrt = f(Math.sqrt(1 - beta2 ** step));
    const oneMinusBeta1 = f(1 - beta1);
    const oneMinusBeta2 = f(1 - beta2);
    const beta2f = f(beta2);
    const eps = f(this.eps);
    for (let i = 0; i < param.length; i++) {
      const g = grad[i];
      const p = f(param[i] * decay);
      const mi = (m[i] = f(m[i] + f(oneMinusBeta1 * f(g - m[i]))));
      const vi = (v[i] = f(f(v[i] * beta2f) + f(f(g * g) * oneMinusBeta2)));
      const denom = f(f(f(Math.sqrt(vi)) / correction2Sqrt) + eps);
      param[i] = f(p - f(stepSize * f(mi / denom)));
    }
  }
}
