/**
 * The lorakit side of the benchmarks: one task per process (so peak RSS is
 * its own), printing one JSON line with the same fields as the PyTorch side
 * (torch_tasks.py).
 *
 *   tsx benchmarks/compare/lorakit-tasks.ts train-step <model> [--qlora | --int8] [--gradient-checkpointing] [--eager] [--steps N] [--tokens 4x512]
 *   tsx benchmarks/compare/lorakit-tasks.ts train-cli <model> <data.jsonl> [--steps 6] [--tokens 4x512]
 *   tsx benchmarks/compare/lorakit-tasks.ts inference <model> [--eager] [--tokens 4x512] [--new-tokens 64]
 *   tsx benchmarks/compare/lorakit-tasks.ts decode <model> [--new-tokens 64] [--dtype q4] [--eager]
 *   tsx benchmarks/compare/lorakit-tasks.ts merge <model> <adapter> <out>
 *   tsx benchmarks/compare/lorakit-tasks.ts quantize <model> [--threads N]
 */
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Tensor, manualSeed, noGrad } from '@lorakit/core';
import { Linear4bit } from '@lorakit/core/nn';
import { AdamW } from '@lorakit/core/optim';
import { AutoModelForCausalLM, generate } from '@lorakit/models';
import { LoraConfig, getPeftModel, mergeCheckpoint, quantizeModel, quantizeModel8bit } from '@lorakit/adapters';
import { median } from '../stats.ts';

const peakRssBytes = () => process.resourceUsage().maxRSS * 1024;
const tokenIds = (vocab: number, count: number, offset = 0) => Int32Array.from({ length: count }, (_, i) => (i * 7919 + offset) % vocab);
const option = (name: string) => {
  const at = process.argv.indexOf(name);
  return at < 0 ? undefined : process.argv[at + 1];
};
/** --tokens BxS: the batch of B sequences of S tokens that steps and forwards run on (4x512 unless given). */
const [batch, sequence] = (option('--tokens') ?? '4x512').split('x').map(Number);
const newTokens = Number(option('--new-tokens') ?? 64);

/**
 * LoRA r=16 on every linear layer, AdamW, --tokens (4x512): two warm-up steps (the first traces the compiled
 * layers, the second makes their sessions), then the median of --steps (5). The base in float32, NF4 (qlora) or
 * LLM.int8 (int8). Decoder layers run compiled, as Trainer and `lora train` run them (--eager: op by op).
 */
async function trainStep(dir: string, base: 'float32' | 'qlora' | 'int8', steps: number, gradientCheckpointing: boolean) {
  manualSeed(0);
  const model = await AutoModelForCausalLM.fromPretrained(dir);
  if (base === 'qlora') await quantizeModel(model, { quantType: 'nf4', doubleQuant: true });
  if (base === 'int8') quantizeModel8bit(model);
  model.enableGradientCheckpointing(gradientCheckpointing);
  model.enableCompiledLayers(!process.argv.includes('--eager'));
  global.gc?.();
  const loadedRssBytes = process.memoryUsage().rss;
  const peft = getPeftModel(model, new LoraConfig({ r: 16, loraAlpha: 32, targetModules: 'all-linear' }));
  const optimizer = new AdamW(peft.trainableParameters().map(([, p]) => p), { lr: 1e-4 });
  const inputIds = new Tensor(tokenIds(model.config.vocab_size, batch * sequence, 13), [batch, sequence]);
  peft.train();
  const step = () => {
    const { loss } = peft.call({ inputIds, labels: inputIds, logitsToKeep: 0 }); // the loss alone, as Trainer asks for it
    loss!.backward();
    optimizer.step();
    optimizer.zeroGrad();
  };
  step(); // traced here
  step(); // sessions are created here
  const times: number[] = [];
  for (let i = 0; i < steps; i++) {
    const start = performance.now();
    step();
    times.push((performance.now() - start) / 1000);
  }
  return { seconds: median(times), loadedRssBytes, peakRssBytes: peakRssBytes(), trainable: peft.numParameters({ trainableOnly: true }) };
}

/**
 * `lora train` itself, in its own process, as a user runs it: LoRA r=16 (alpha 32, dropout 0.05) on every linear
 * layer, the JSONL's texts cut at --tokens' S tokens, batches of B, `steps` steps on a linear schedule, clipping at
 * norm 1, a log line every step; tokens/s over the training loop's time as the command reports it.
 */
async function trainCli(dir: string, data: string, steps: number) {
  const out = await mkdtemp(join(tmpdir(), 'lorakit-bench-train-'));
  const start = performance.now();
  const flags = ['--target', 'all-linear', '--r', '16', '--alpha', '32', '--dropout', '0.05', '--data', data, '--max-length', String(sequence), '--batch-size', String(batch),
    '--max-steps', String(steps), '--lr', '2e-4', '--scheduler', 'linear', '--max-grad-norm', '1', '--logging-steps', '1', '--progress', 'none', '--out', join(out, 'run'), '--json'];
  const summary = JSON.parse(execFileSync(process.execPath, ['packages/cli/bin/lora.mjs', 'train', dir, ...flags], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }));
  const wallSeconds = (performance.now() - start) / 1000;
  await rm(out, { recursive: true, force: true });
  return { tokensPerSecond: (steps * batch * sequence) / summary.seconds, wallSeconds, peakRssBytes: summary.peak_rss_mib * 2 ** 20 };
}

/**
 * Forward tokens/s at --tokens (4x512; median of 2 after two warm-ups, the layers compiled as Trainer's evaluation
 * runs them).
 */
async function inference(dir: string) {
  const model = await AutoModelForCausalLM.fromPretrained(dir);
  model.enableCompiledLayers(!process.argv.includes('--eager'));
  const vocab = model.config.vocab_size;
  const inputIds = new Tensor(tokenIds(vocab, batch * sequence), [batch, sequence]);
  noGrad(() => model.call({ inputIds })); // traced here
  noGrad(() => model.call({ inputIds })); // sessions are created here
  const forwards = [0, 1].map(() => {
    const start = performance.now();
    noGrad(() => model.call({ inputIds }));
    return (performance.now() - start) / 1000;
  });
  return { forwardTokensPerSecond: (batch * sequence) / median(forwards), peakRssBytes: peakRssBytes() };
}

/**
 * Greedy decoding tokens/s after a 16-token prompt: --new-tokens (64) tokens, timed from the first new token to the
 * last (the prompt's forward left out), on the decoder graph (--dtype q4: its 4-bit weights; --eager: op by op).
 */
async function decode(dir: string, dtype: 'fp32' | 'q4') {
  const model = await AutoModelForCausalLM.fromPretrained(dir);
  const prompt = Array.from({ length: 16 }, (_, i) => (i * 31) % model.config.vocab_size);
  const decoder = process.argv.includes('--eager') ? 'eager' : 'graph';
  generate(model, [prompt], { maxNewTokens: 4, eosTokenId: null, decoder, dtype }); // the session is made here
  const times: number[] = [];
  generate(model, [prompt], { maxNewTokens: newTokens, eosTokenId: null, decoder, dtype, onToken: () => times.push(performance.now()) });
  return { greedyTokensPerSecond: (newTokens - 1) / ((times.at(-1)! - times[0]) / 1000), peakRssBytes: peakRssBytes() };
}

/** The streaming merge (`lora merge`), timed from opening the checkpoint to the renamed output folder. */
async function merge(model: string, adapter: string, out: string) {
  const start = performance.now();
  await mergeCheckpoint({ model, adapters: [{ dir: adapter }], out });
  return { seconds: (performance.now() - start) / 1000, peakRssBytes: peakRssBytes() };
}

/** NF4 with double quantization (blocks of 64) of every linear weight but the head, from float32 in memory, on every core. */
async function quantize(dir: string, threads: number | undefined) {
  const model = await AutoModelForCausalLM.fromPretrained(dir);
  const start = performance.now();
  await quantizeModel(model, { quantType: 'nf4', blockSize: 64, doubleQuant: true, threads });
  const seconds = (performance.now() - start) / 1000;
  const layers = model.modules().filter((m): m is Linear4bit => m instanceof Linear4bit);
  const weights = layers.reduce((n, l) => n + l.inFeatures * l.outFeatures, 0);
  const bytes = layers.reduce((n, l) => n + l.weight.numel + l.double!.quantized.length + 4 * l.double!.nestedAbsmax.length, 0);
  return { seconds, weights, bytesPerWeight: bytes / weights, peakRssBytes: peakRssBytes() };
}

const [task, ...args] = process.argv.slice(2);
const tasks: Record<string, () => Promise<object>> = {
  'train-step': () => trainStep(args[0], args.includes('--qlora') ? 'qlora' : args.includes('--int8') ? 'int8' : 'float32', Number(option('--steps') ?? 5), args.includes('--gradient-checkpointing')),
  'train-cli': () => trainCli(args[0], args[1], Number(option('--steps') ?? 6)),
  inference: () => inference(args[0]),
  decode: () => decode(args[0], option('--dtype') === 'q4' ? 'q4' : 'fp32'),
  merge: () => merge(args[0], args[1], args[2]),
  quantize: () => quantize(args[0], option('--threads') === undefined ? undefined : Number(option('--threads'))),
};
if (!(task in tasks)) throw new Error(`unknown task ${task}; one of ${Object.keys(tasks).join(', ')}`);
console.log(JSON.stringify(await tasks[task]()));
