/**
 * lora train <model> (--adapter DIR | --target ...) --data FILE --out DIR:
 * checkpoints in DIR/checkpoint-N, the log in DIR/training_log.jsonl, the
 * final adapter in DIR/adapter. Ctrl-C saves a checkpoint; --resume continues.
 */
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { AutoModelForCausalLM, AutoTokenizer, Trainer, loadDataset, type CausalLM, type ProgressMode } from '@lorakit/models';
import { PeftModel, quantizeModel, quantizeModel8bit } from '@lorakit/adapters';
import { UsageError } from '../errors.ts';
import { writeFolderAtomically } from '@lorakit/core/io';
import { checkOutFlag } from '../output.ts';
import { addLora, type LoraFlags } from './add.ts';

export interface TrainArgs extends Partial<LoraFlags> {
  model: string;
  adapter?: string;
  data: string;
  eval?: string;
  qlora: boolean;
  loadIn8bit: boolean;
  out: string;
  resume: boolean;
  epochs: number;
  maxSteps?: number;
  batchSize: number;
  gradAccum: number;
  lr: number;
  weightDecay: number;
  scheduler: 'constant' | 'linear' | 'cosine';
  warmup: number;
  maxLength: number;
  packing: boolean;
  maxGradNorm: number;
  loggingSteps: number;
  evalSteps?: number;
  saveSteps?: number;
  saveTotalLimit?: number;
  seed: number;
  gradientCheckpointing: boolean;
  compile: boolean;
  progress: ProgressMode;
  json: boolean;
}

async function existingFile(flag: string, path: string): Promise<void> {
  const info = await stat(path).catch(() => null);
  if (!info?.isFile()) throw new UsageError(`--${flag} ${path}: ${info ? 'is not a file' : 'no such file'}`);
}

async function trainableModel(args: TrainArgs, model: CausalLM): Promise<PeftModel> {
  if (args.qlora) await quantizeModel(model);
  if (args.loadIn8bit) quantizeModel8bit(model);
  if (args.adapter !== undefined) return PeftModel.fromPretrained(model, args.adapter, { isTrainable: true, onWarning: (m) => process.stderr.write(`warning: ${m}\n`) });
  if (args.target === undefined) throw new UsageError('lora train needs --adapter DIR (from lora add) or --target q_proj,v_proj');
  return addLora(model, args.model, args as LoraFlags);
}

export async function train(args: TrainArgs): Promise<void> {
  if (args.adapter !== undefined && args.target !== undefined) throw new UsageError('give --adapter or --target, not both');
  if (args.qlora && args.loadIn8bit) throw new UsageError('--qlora (4-bit) and --load-in-8bit each quantize the base: give one');
  if (args.adapter !== undefined && (args.layers !== undefined || args.exclude !== undefined)) {
    throw new UsageError(`${args.layers !== undefined ? '--layers' : '--exclude'} goes with --target; an --adapter keeps the layers and modules it was made with`);
  }
  await existingFile('data', args.data);
  if (args.eval !== undefined) await existingFile('eval', args.eval);
  await checkOutFlag(args.out, [args.model, ...(args.adapter ? [args.adapter] : [])], { allowExisting: args.resume });

  const model = await AutoModelForCausalLM.fromPretrained(args.model, { onWarning: () => {} });
  const tokenizer = await AutoTokenizer.fromPretrained(args.model);
  const peft = await trainableModel(args, model);
  const log = (line: string) => process.stderr.write(`${line}\n`);
  log(peft.trainableParametersSummary());
  const data = { maxLength: args.maxLength, packing: args.packing };
  const trainer = new Trainer(peft, {
    outputDir: args.out,
    train: await loadDataset(args.data, tokenizer, data),
    eval: args.eval ? await loadDataset(args.eval, tokenizer, data) : null,
    padTokenId: tokenizer.padTokenId ?? tokenizer.eosTokenId ?? 0,
    epochs: args.epochs, maxSteps: args.maxSteps ?? null, batchSize: args.batchSize, gradientAccumulationSteps: args.gradAccum,
    learningRate: args.lr, weightDecay: args.weightDecay, lrScheduler: args.scheduler, warmupSteps: args.warmup, maxGradNorm: args.maxGradNorm,
    loggingSteps: args.loggingSteps, evalSteps: args.evalSteps ?? null, saveSteps: args.saveSteps ?? null, saveTotalLimit: args.saveTotalLimit ?? null,
    seed: args.seed, progress: args.progress, gradientCheckpointing: args.gradientCheckpointing, compile: args.compile, resumeFromCheckpoint: args.resume,
  });
  const evalBefore = args.eval ? trainer.evaluate() : null;
  const result = await trainer.train();
  const adapterDir = join(args.out, 'adapter');
  if (!result.interrupted) await writeFolderAtomically(adapterDir, (dir) => peft.savePretrained(dir));
  const summary = {
    steps: result.globalStep, total_steps: result.totalSteps, train_loss: result.trainLoss, eval_loss_before: evalBefore, eval_loss: result.evalLoss,
    seconds: Number(result.secondsElapsed.toFixed(2)), peak_rss_mib: Math.round(result.peakRssBytes / 2 ** 20),
    interrupted: result.interrupted, adapter: result.interrupted ? null : adapterDir, checkpoints: result.checkpoints,
  };
  if (args.json) {
    process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
    return;
  }
  const evalLine = evalBefore !== null && result.evalLoss !== null ? `, eval loss ${evalBefore.toFixed(4)} -> ${result.evalLoss.toFixed(4)}` : '';
  process.stdout.write(result.interrupted
    ? `interrupted at step ${result.globalStep}/${result.totalSteps}; checkpoint saved, continue with --resume\n`
    : `trained ${result.globalStep} steps in ${result.secondsElapsed.toFixed(1)} s: train loss ${result.trainLoss?.toFixed(4)}${evalLine}\nadapter written to ${adapterDir}\n`);
}
