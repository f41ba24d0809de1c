/**
 * The optimizer base: a list of parameters, per-parameter state tensors, and
 * a state dict that restores that state exactly (for checkpoints and resume).
 */
import type { Parameter } from '../parameter.ts';
import { Tensor } from '../tensor.ts';

export interface ParamState {
  step: number;
  buffers: Record<string, Float32Array>;
}

export interface OptimizerStateDict {
  lr: number;
  state: Array<{ step: number; buffers: Record<string, Tensor> } | null>;
}

export abstract class Optimizer {
  readonly params: Parameter[];
  /** Current learning rate; schedules write it. */
  lr: number;
  protected readonly state = new Map<Parameter, ParamState>();

  constructor(params: Iterable<Parameter>, lr: number) {
    this.params = [...new Set(params)];
    if (this.params.length === 0) throw new Error(`${this.constructor.name}: no parameters to optimize (is everything frozen?)`);
    if (!(lr >= 0)) throw new Error(`${this.constructor.name}: learning rate must be >= 0, got ${lr}`);
    this.lr = lr;
  }

  /** Apply one update to every parameter that has a gradient. */
  step(): void {
    for (const p of this.params) {
      if (p.grad === null) continue;
      let state = this.state.get(p);
      if (state === undefined) this.state.set(p, (state = { step: 0, buffers: this.initBuffers(p) }));
      state.step += 1;
      this.update(p.values as Float32Array, p.grad.values as Float32Array, state);
    }
  }

  zeroGrad(): void {
    for (const p of this.params) p.grad = null;
  }

  protected abstract initBuffers(p: Parameter): Record<string, Float32Array>;
  protected abstract update(param: Float32Array, grad: Float32Array, state: ParamState): void;

  stateDict(): OptimizerStateDict {
    return {
      lr: this.lr,
      state: this.params.map((p) => {
        const s = this.state.get(p);
        if (s === undefined) return null;
        const buffers = Object.fromEntries(Object.entries(s.buffers).map(([k, v]) => [k, new Tensor(v.slice(), p.shape)]));
        return { step: s.step, buffers };
      }),
    };
  }

  loadStateDict(saved: OptimizerStateDict): void {
    if (saved.state.length !== this.params.length) {
      throw new Error(`${this.constructor.name}.loadStateDict: state for ${saved.state.length} parameters, optimizer has ${this.params.length}`);
    }
    this.lr = saved.lr;
    this.state.clear();
    saved.state.forEach((s, i) => {
      if (s === null) return;
      const p = this.params[i];
      const buffers = Object.fromEntries(Object.entries(s.buffers).map(([k, t]) => {
        if (t.numel !== p.numel) throw new Error(`${this.constructor.name}.loadStateDict: ${k} of parameter ${i} has ${t.numel} values, expected ${p.numel}`);
        return [k, Float32Array.from(t.values)];
      }));
      this.state.set(p, { step: s.step, buffers });
    });
  }
}
