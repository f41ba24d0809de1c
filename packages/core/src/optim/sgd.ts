/**
 * SGD with momentum, dampening, Nesterov and (coupled) weight decay, as torch.optim.SGD:
 *
 *   g ← g + λ·p;  b ← μ·b + (1 − τ)·g  (b = g on the first step);
 *   g ← nesterov ? g + μ·b : b;  p ← p − lr·g
 */
import type { Parameter } from '../parameter.ts';
import { Optimizer, type ParamState } from './optimizer.ts';

const f = Math.fround;

export interface SGDOptions {
  lr?: number;
  momentum?: number;
  dampening?: number;
  weightDecay?: number;
  nesterov?: boolean;
}

export class SGD extends Optimizer {
  readonly momentum: number;
  readonly dampening: number;
  readonly weightDecay: number;
  readonly nesterov: boolean;

  constructor(params: Iterable<Parameter>, { lr = 1e-3, momentum = 0, dampening = 0, weightDecay = 0, nesterov = false }: SGDOptions = {}) {
    super(params, lr);
    if (nesterov && (momentum <= 0 || dampening !== 0)) throw new Error('SGD: Nesterov momentum needs momentum > 0 and dampening 0');
    this.momentum = momentum;
    this.dampening = dampening;
    this.weightDecay = weightDecay;
    this.nesterov = nesterov;
  }

  protected initBuffers(p: Parameter): Record<string, Float32Array> {
    return this.momentum === 0 ? {} : { momentum_buffer: new Float32Array(p.numel) };
  }

  protected update(param: Float32Array, grad: Float32Array, { step, buffers }: ParamState): void {
    const buf = buffers.momentum_buffer;
    const lr = f(this.lr);
    for (let i = 0; i < param.length; i++) {
      let g = this.weightDecay === 0 ? grad[i] : f(grad[i] + f(this.weightDecay * param[i]));
      if (buf !== undefined) {
        buf[i] = step === 1 ? g : f(f(this.momentum * buf[i]) + f((1 - this.dampening) * g));
        g = this.nesterov ? f(g + f(this.momentum * buf[i])) : buf[i];
      }
      param[i] = f(param[i] - f(lr * g));
    }
  }
}
