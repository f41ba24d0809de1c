/**
 * The training loop for causal-LM fine-tuning of whatever parameters are
 * trainable (LoRA, QLoRA or the full model), with the HF Trainer's options:
 *
 *   const trainer = new Trainer(peft, { outputDir: 'out', train, eval, epochs: 3, learningRate: 2e-4, padTokenId: 1 });
 *   const result = await trainer.train();        // or { resumeFromCheckpoint: true }
 *
 * Each optimizer step: gradient accumulation over micro-batches, clipping to
 * maxGradNorm, AdamW, the learning-rate schedule. Logs go to
 * out/training_log.jsonl; checkpoints to out/checkpoint-N (exact resume:
 * parameters, optimizer, schedule, RNG and data position). Ctrl-C finishes
 * the step, saves a checkpoint and returns; a second Ctrl-C aborts.
 */
import { appendFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { Tensor, defaultGenerator, disposeCompiled, manualSeed, noGrad, type Module, type Parameter } from '@lorakit/core';
import { AdamW, LRScheduler, clipGradNorm_, type OptimizerStateDict, type ScheduleName } from '@lorakit/core/optim';
import { CausalLM, type CausalLMInputs, type CausalLMOutput } from '../causal-lm.ts';
import { BatchSchedule, type Batch, type DataPosition } from './batches.ts';
import type { TokenizedExample } from './examples.ts';
import { createProgress, type ProgressMode } from './progress.ts';
import { listCheckpoints, readCheckpoint, rotateCheckpoints, writeCheckpoint } from './checkpoint-files.ts';

export interface TrainableModel extends Module {
  forward(inputs: CausalLMInputs): CausalLMOutput;
  /** Present on PeftModel: checkpoints then carry the adapter in PEFT's format. */
  savePretrained?(dir: string): Promise<void>;
}

export interface TrainerOptions {
  outputDir: string;
  train: TokenizedExample[];
  eval?: TokenizedExample[] | null;
  padTokenId: number;
  epochs?: number;
  /** Overrides epochs when set. */
  maxSteps?: number | null;
  batchSize?: number;
  gradientAccumulationSteps?: number;
  learningRate?: number;
  weightDecay?: number;
  betas?: [number, number];
  eps?: number;
  lrScheduler?: ScheduleName;
  warmupSteps?: number;
  maxGradNorm?: number | null;
  loggingSteps?: number;
  evalSteps?: number | null;
  saveSteps?: number | null;
  saveTotalLimit?: number | null;
  seed?: number;
  progress?: ProgressMode;
  /** true: the latest complete checkpoint in outputDir; a path: that checkpoint. */
  resumeFromCheckpoint?: boolean | string;
  /** Resume even when the run's settings or data changed since the checkpoint. */
  allowChangedRun?: boolean;
  /** Recompute each decoder layer in the backward (less memory for long sequences, about one more forward of time). */
  gradientCheckpointing?: boolean;
  /**
   * Run each decoder layer compiled, as one onnxruntime session each way, traced on the first step
   * (CausalLM.enableCompiledLayers; default true). false: every op runs on its own, eagerly.
   */
  compile?: boolean;
  /**
   * Pad each batch to a multiple of this many positions (padding is masked and ignored by the loss: the same
   * result): fewer shapes for compiled layers to trace. Default 64 when compiling, else 1.
   */
  padToMultipleOf?: number | null;
  /** Handle SIGINT (Ctrl-C) and SIGTERM during train(): finish the step, save a checkpoint, return (default true). */
  handleInterrupts?: boolean;
  onLog?: (entry: LogEntry) => void;
}

export interface LogEntry {
  step: number;
  epoch: number;
  loss?: number;
  learning_rate?: number;
  grad_norm?: number;
  tokens_per_second?: number;
  elapsed_seconds: number;
  eval_loss?: number;
}

export interface TrainResult {
  globalStep: number;
  totalSteps: number;
  trainLoss: number | null;
  evalLoss: number | null;
  interrupted: boolean;
  checkpoints: string[];
  peakRssBytes: number;
  secondsElapsed: number;
}

const DEFAULTS = {
  epochs: 1, maxSteps: null, batchSize: 4, gradientAccumulationSteps: 1, learningRate: 2e-4, weightDecay: 0, betas: [0.9, 0.999] as [number, number],
  eps: 1e-8, lrScheduler: 'linear' as ScheduleName, warmupSteps: 0, maxGradNorm: 1, loggingSteps: 10, evalSteps: null, saveSteps: null,
  saveTotalLimit: null, seed: 42, progress: 'auto' as ProgressMode, gradientCheckpointing: false, compile: true, padToMultipleOf: null, resumeFromCheckpoint: false, allowChangedRun: false, handleInterrupts: true,
};

type Resolved = Required<Omit<TrainerOptions, 'eval' | 'onLog'>> & Pick<TrainerOptions, 'eval' | 'onLog'>;

export class TrainingAborted extends Error {
  constructor() {
    super('training aborted by a second interrupt; no checkpoint was written for the current step');
    this.name = 'TrainingAborted';
  }
}

export class Trainer {
  readonly options: Resolved;
  readonly schedule: BatchSchedule;
  readonly parameters: Array<[string, Parameter]>;
  readonly optimizer: AdamW;
  readonly scheduler: LRScheduler;
  readonly totalSteps: number;
  globalStep = 0;
  position: DataPosition = { epoch: 0, batch: 0 };
  readonly logHistory: LogEntry[] = [];
  #interrupts = 0;

  constructor(readonly model: TrainableModel, options: TrainerOptions) {
    this.options = { ...DEFAULTS, ...options } as Resolved;
    const o = this.options;
    checkOptions(o);
    this.parameters = model.namedParameters().filter(([, p]) => p.requiresGrad);
    if (this.parameters.length === 0) throw new Error('Trainer: the model has no trainable parameters (everything is frozen)');
    this.schedule = new BatchSchedule(o.train, o.batchSize, o.seed, o.padTokenId, true, this.#padMultiple());
    const stepsPerEpoch = Math.ceil(this.schedule.batchesPerEpoch / o.gradientAccumulationSteps);
    this.totalSteps = o.maxSteps ?? stepsPerEpoch * o.epochs;
    this.optimizer = new AdamW(this.parameters.map(([, p]) => p), { lr: o.learningRate, betas: o.betas, eps: o.eps, weightDecay: o.weightDecay });
    this.scheduler = new LRScheduler(this.optimizer, o.lrScheduler, o.warmupSteps, this.totalSteps);
    const models = model.modules().filter((m): m is CausalLM => m instanceof CausalLM);
    if (o.gradientCheckpointing) {
      if (models.length === 0) throw new Error('Trainer: gradientCheckpointing needs a CausalLM inside the model');
      models.forEach((m) => m.enableGradientCheckpointing());
    }
    models.forEach((m) => m.enableCompiledLayers(o.compile));
  }

  #padMultiple(): number {
    return this.options.padToMultipleOf ?? (this.options.compile ? 64 : 1);
  }

  /** What must not change between a checkpoint and its resume. */
  fingerprint(): Record<string, unknown> {
    const o = this.options;
    const data = createHash('sha256').update(JSON.stringify(o.train)).digest('hex').slice(0, 16);
    return {
      parameters: this.parameters.map(([n, p]) => `${n}:${p.shape.join('x')}`).join(','),
      data, learning_rate: o.learningRate, batch_size: o.batchSize, gradient_accumulation_steps: o.gradientAccumulationSteps,
      weight_decay: o.weightDecay, lr_scheduler: o.lrScheduler, warmup_steps: o.warmupSteps, total_steps: this.totalSteps, seed: o.seed,
    };
  }

  async train(): Promise<TrainResult> {
    const o = this.options;
    const started = performance.now();
    await mkdir(o.outputDir, { recursive: true });
    if (o.resumeFromCheckpoint) await this.#resume();
    else manualSeed(o.seed);
    const progress = createProgress(o.progress, this.totalSteps, this.globalStep);
    const checkpoints: string[] = [];
    const onInterrupt = () => {
      this.#interrupts++;
      progress.note(this.#interrupts === 1 ? 'interrupted: finishing this step and saving a checkpoint (Ctrl-C again to abort)' : 'aborting');
    };
    const signals = o.handleInterrupts ? (['SIGINT', 'SIGTERM'] as const) : [];
    for (const signal of signals) process.on(signal, onInterrupt);
    this.model.train();
    const batches = this.schedule.from(this.position);
    let window = { loss: 0, count: 0, tokens: 0, since: performance.now() };
    let lastLoss: number | null = null;
    let evalLoss: number | null = null;
    try {
      while (this.globalStep < this.totalSteps && this.#interrupts === 0) {
        const { loss, tokens } = await this.#optimizerStep(batches);
        window = { ...window, loss: window.loss + loss, count: window.count + 1, tokens: window.tokens + tokens };
        const gradNorm = this.#lastGradNorm;
        this.globalStep++;
        const logged = this.globalStep % o.loggingSteps === 0 || this.globalStep === this.totalSteps;
        const seconds = (performance.now() - window.since) / 1000;
        if (logged) {
          lastLoss = window.loss / window.count;
          await this.#log({ step: this.globalStep, epoch: this.#epoch(), loss: lastLoss, learning_rate: this.optimizer.lr, grad_norm: gradNorm, tokens_per_second: window.tokens / seconds, elapsed_seconds: (performance.now() - started) / 1000 });
        }
        progress.update({ step: this.globalStep, loss: lastLoss, tokensPerSecond: window.tokens / Math.max(seconds, 1e-9), learningRate: this.optimizer.lr }, logged);
        if (logged) window = { loss: 0, count: 0, tokens: 0, since: performance.now() };
        if (o.eval && o.evalSteps && this.globalStep % o.evalSteps === 0) {
          evalLoss = this.evaluate();
          await this.#log({ step: this.globalStep, epoch: this.#epoch(), eval_loss: evalLoss, elapsed_seconds: (performance.now() - started) / 1000 });
        }
        if (o.saveSteps && this.globalStep % o.saveSteps === 0 && this.globalStep < this.totalSteps) checkpoints.push(await this.saveCheckpoint());
        await new Promise((resolve) => setImmediate(resolve)); // let a pending signal in
      }
      if (o.eval && (evalLoss === null || !o.evalSteps || this.globalStep % o.evalSteps !== 0)) {
        evalLoss = this.evaluate();
        await this.#log({ step: this.globalStep, epoch: this.#epoch(), eval_loss: evalLoss, elapsed_seconds: (performance.now() - started) / 1000 });
      }
      checkpoints.push(await this.saveCheckpoint());
    } finally {
      for (const signal of signals) process.off(signal, onInterrupt);
      progress.stop();
      this.model.eval();
      disposeCompiled(); // the sessions' memory goes back; a later step traces again
    }
    return {
      globalStep: this.globalStep, totalSteps: this.totalSteps, trainLoss: lastLoss, evalLoss, interrupted: this.globalStep < this.totalSteps,
      checkpoints, peakRssBytes: process.resourceUsage().maxRSS * 1024, secondsElapsed: (performance.now() - started) / 1000,
    };
  }

  #lastGradNorm = 0;

  /** Gradient accumulation over micro-batches, clipping, AdamW, schedule. Returns the mean micro-batch loss. */
  async #optimizerStep(batches: IterableIterator<[DataPosition, Batch]>): Promise<{ loss: number; tokens: number }> {
    const accumulation = this.options.gradientAccumulationSteps;
    let loss = 0;
    let tokens = 0;
    for (let k = 0; k < accumulation; k++) {
      if (this.#interrupts > 1) throw new TrainingAborted();
      const [position, batch] = batches.next().value as [DataPosition, Batch];
      const { loss: l } = this.model.call({ inputIds: batch.inputIds, attentionMask: batch.attentionMask, labels: batch.labels, logitsToKeep: 0 });
      (accumulation === 1 ? l! : l!.div(accumulation)).backward();
      loss += l!.item() / accumulation;
      tokens += batch.tokens;
      this.position = nextPosition(position, this.schedule.batchesPerEpoch);
      if (k + 1 < accumulation) await new Promise((resolve) => setImmediate(resolve));
    }
    const params = this.parameters.map(([, p]) => p);
    this.#lastGradNorm = clipGradNorm_(params, this.options.maxGradNorm ?? Infinity);
    this.optimizer.step();
    this.scheduler.step();
    this.optimizer.zeroGrad();
    return { loss, tokens };
  }

  /** Mean loss over the eval set (no gradients, eval mode), weighted by labelled tokens. */
  evaluate(): number {
    const examples = this.options.eval;
    if (!examples || examples.length === 0) throw new Error('Trainer.evaluate: no eval data');
    const schedule = new BatchSchedule(examples, this.options.batchSize, 0, this.options.padTokenId, false, this.#padMultiple());
    const wasTraining = this.model.training;
    this.model.eval();
    let total = 0;
    let tokens = 0;
    noGrad(() => {
      for (let b = 0; b < schedule.batchesPerEpoch; b++) {
        const batch = schedule.batch({ epoch: 0, batch: b });
        const { loss } = this.model.call({ inputIds: batch.inputIds, attentionMask: batch.attentionMask, labels: batch.labels, logitsToKeep: 0 });
        total += loss!.item() * batch.tokens;
        tokens += batch.tokens;
      }
    });
    this.model.train(wasTraining);
    return total / tokens;
  }

  #epoch(): number {
    return this.position.epoch + this.position.batch / this.schedule.batchesPerEpoch;
  }

  async #log(entry: LogEntry): Promise<void> {
    this.logHistory.push(entry);
    await appendFile(join(this.options.outputDir, 'training_log.jsonl'), `${JSON.stringify(entry)}\n`);
    this.options.onLog?.(entry);
  }

  async saveCheckpoint(): Promise<string> {
    const optimizer = this.optimizer.stateDict();
    const moments = new Map<string, Tensor>();
    optimizer.state.forEach((s, i) => s && Object.entries(s.buffers).forEach(([k, t]) => moments.set(`state.${i}.${k}`, t)));
    const state = {
      global_step: this.globalStep, total_steps: this.totalSteps, epoch: this.#epoch(), data_position: this.position,
      rng_state: defaultGenerator.getState().map((v) => (Number.isNaN(v) ? null : v)), scheduler: this.scheduler.stateDict(),
      optimizer: { lr: optimizer.lr, steps: optimizer.state.map((s) => s?.step ?? null) }, log_history: this.logHistory, fingerprint: this.fingerprint(),
    };
    const dir = await writeCheckpoint(this.options.outputDir, this.globalStep, {
      state, trainable: new Map(this.parameters), optimizer: moments,
      writeExtra: this.model.savePretrained ? (d) => this.model.savePretrained!(d) : undefined,
    });
    if (this.options.saveTotalLimit) await rotateCheckpoints(this.options.outputDir, this.options.saveTotalLimit);
    return dir;
  }

  async #resume(): Promise<void> {
    const target = this.options.resumeFromCheckpoint;
    let dir: string;
    if (typeof target === 'string') dir = target;
    else {
      const { complete } = await listCheckpoints(this.options.outputDir);
      if (complete.length === 0) throw new Error(`can't find a valid checkpoint at ${this.options.outputDir}`);
      dir = complete[complete.length - 1].dir;
    }
    const { state, trainable, optimizer } = await readCheckpoint(dir);
    this.#checkFingerprint(state.fingerprint as Record<string, unknown>, dir);
    noGrad(() => {
      for (const [name, p] of this.parameters) p.values.set(trainable.get(name)!.values);
    });
    const steps = (state.optimizer as { steps: Array<number | null> }).steps;
    const saved: OptimizerStateDict = {
      lr: (state.optimizer as { lr: number }).lr,
      state: steps.map((step, i) => (step === null ? null : { step, buffers: { exp_avg: optimizer.get(`state.${i}.exp_avg`)!, exp_avg_sq: optimizer.get(`state.${i}.exp_avg_sq`)! } })),
    };
    this.optimizer.loadStateDict(saved);
    this.scheduler.loadStateDict(state.scheduler as { step: number; baseLr: number });
    defaultGenerator.setState((state.rng_state as Array<number | null>).map((v) => v ?? Number.NaN));
    this.globalStep = state.global_step as number;
    this.position = state.data_position as DataPosition;
    this.logHistory.push(...(state.log_history as LogEntry[]));
  }

  #checkFingerprint(saved: Record<string, unknown>, dir: string): void {
    const now = this.fingerprint();
    const changed = Object.keys(now).filter((k) => JSON.stringify(now[k]) !== JSON.stringify(saved?.[k]));
    if (changed.length > 0 && !this.options.allowChangedRun) {
      throw new Error(`${dir}: the checkpoint comes from a different run (${changed.join(', ')} changed); pass allowChangedRun to resume anyway`);
    }
  }
}

function nextPosition(p: DataPosition, batchesPerEpoch: number): DataPosition {
  return p.batch + 1 < batchesPerEpoch ? { epoch: p.epoch, batch: p.batch + 1 } : { epoch: p.epoch + 1, batch: 0 };
}

function checkOptions(o: Resolved): void {
  const positive = (name: keyof Resolved, integer = true) => {
    const v = o[name] as number;
    if (!(typeof v === 'number' && v > 0 && (!integer || Number.isInteger(v)))) throw new Error(`Trainer: ${name} must be a positive ${integer ? 'integer' : 'number'}, got ${v}`);
  };
  positive('epochs');
  positive('batchSize');
  positive('gradientAccumulationSteps');
  positive('loggingSteps');
  positive('learningRate', false);
  if (o.maxSteps !== null) positive('maxSteps');
  for (const name of ['evalSteps', 'saveSteps', 'saveTotalLimit', 'padToMultipleOf'] as const) if (o[name] !== null) positive(name);
  if (!(Number.isInteger(o.warmupSteps) && o.warmupSteps >= 0)) throw new Error(`Trainer: warmupSteps must be a non-negative integer, got ${o.warmupSteps}`);
  if (o.maxGradNorm !== null && !(o.maxGradNorm > 0)) throw new Error(`Trainer: maxGradNorm must be positive or null, got ${o.maxGradNorm}`);
}
