// @lorakit/core/optim (also `optim` in @lorakit/core): optimizers, clipping and schedules, as in torch.optim.
export { Optimizer, type OptimizerStateDict, type ParamState } from './optimizer.ts';
export { AdamW, type AdamWOptions } from './adamw.ts';
export { SGD, type SGDOptions } from './sgd.ts';
export { clipGradNorm_ } from './clip.ts';
export { LRScheduler, scheduleFactor, type ScheduleName } from './schedule.ts';
