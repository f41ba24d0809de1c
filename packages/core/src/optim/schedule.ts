/**
 * Learning-rate schedules, as transformers' get_*_schedule_with_warmup over
 * PyTorch's LambdaLR: lr = baseLr · factor(step), step counting scheduler.step() calls.
 *
 *   warmup:   factor = step / warmup                          (step < warmup)
 *   constant: 1;  linear: (total − step) / (total − warmup);
 *   cosine:   ½ (1 + cos(π · progress)),  progress = (step − warmup)/(total − warmup)
 */
import type { Optimizer } from './optimizer.ts';

export type ScheduleName = 'constant' | 'linear' | 'cosine';

export function scheduleFactor(name: ScheduleName, step: number, warmupSteps: number, totalSteps: number): number {
  if (step < warmupSteps) return step / Math.max(1, warmupSteps);
  const progress = (step - warmupSteps) / Math.max(1, totalSteps - warmupSteps);
  switch (name) {
    case 'constant': return 1;
    case 'linear': return Math.max(0, (totalSteps - step) / Math.max(1, totalSteps - warmupSteps));
    case 'cosine': return Math.max(0, 0.5 * (1 + Math.cos(Math.PI * progress)));
  }
}

export class LRScheduler {
  readonly baseLr: number;
  #step = 0;

  constructor(readonly optimizer: Optimizer, readonly name: ScheduleName, readonly warmupSteps = 0, readonly totalSteps = 0) {
    if (name !== 'constant' && !(totalSteps > 0)) throw new Error(`LRScheduler: the ${name} schedule needs totalSteps > 0`);
    this.baseLr = optimizer.lr;
    this.#apply();
  }

  get lastStep(): number {
    return this.#step;
  }

  step(): void {
    this.#step += 1;
    this.#apply();
  }

  #apply(): void {
    this.optimizer.lr = this.baseLr * scheduleFactor(this.name, this.#step, this.warmupSteps, this.totalSteps);
  }

  stateDict(): { step: number; baseLr: number } {
    return { step: this.#step, baseLr: this.baseLr };
  }

  loadStateDict(state: { step: number; baseLr: number }): void {
    if (state.baseLr !== this.baseLr) throw new Error(`LRScheduler.loadStateDict: saved base lr ${state.baseLr} differs from ${this.baseLr}`);
    this.#step = state.step;
    this.#apply();
  }
}
