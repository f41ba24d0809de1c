/**
 * The 8-bit base experiment (issue 16): does LoRA on an LLM.int8 base (quantizeModel8bit) train as well as on
 * the float32 base? The house-style task (examples/data/house-style), LoRA r=16 on every linear layer, the same
 * seed, data order and steps; the held-out loss after training, float32 base against int8 base, for the
 * trained tiny-code-llama and for a random SmolLM2-135M-shaped model (the shapes of the benchmarks, initialized
 * as transformers initializes a new llama: every linear and embedding weight normal with std 0.02). The issue
 * keeps the 8-bit base only if the held-out loss stays within 1% of the float32 run.
 *
 *   npm run bench:int8 [-- --steps 57] [-- --only tiny-code-llama]
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { init, manualSeed, noGrad } from '@lorakit/core';
import { Embedding, Linear } from '@lorakit/core/nn';
import { AutoModelForCausalLM, AutoTokenizer, Trainer, loadDataset, modelForConfig, type CausalLM } from '@lorakit/models';
import { LoraConfig, getPeftModel, quantizeModel8bit } from '@lorakit/adapters';
import { SMOLLM2_SHAPES } from './checkpoints.ts';

const option = (name: string, fallback: string) => (process.argv.includes(name) ? process.argv[process.argv.indexOf(name) + 1] : fallback);
const steps = Number(option('--steps', '57')); // three epochs of the 152 training examples at batch 8
const TINY = 'examples/models/tiny-code-llama';
const tokenizer = await AutoTokenizer.fromPretrained(TINY);
const train = await loadDataset('examples/data/house-style/train.jsonl', tokenizer, { maxLength: 128 });
const heldOut = await loadDataset('examples/data/house-style/eval.jsonl', tokenizer, { maxLength: 128 });

const bases: Record<string, { make: () => Promise<CausalLM>; learningRate: number }> = {
  'tiny-code-llama': { make: () => AutoModelForCausalLM.fromPretrained(TINY), learningRate: 1e-3 },
  'SmolLM2-135M shapes, random': { make: async () => initializedAsTransformers(modelForConfig(SMOLLM2_SHAPES)), learningRate: 1e-3 },
};

/** transformers' _init_weights for a new llama: linear and embedding weights N(0, initializer_range = 0.02), biases 0. */
function initializedAsTransformers(model: CausalLM): CausalLM {
  manualSeed(0);
  noGrad(() => {
    for (const m of model.modules()) {
      if (m instanceof Linear || m instanceof Embedding) init.normal_(m.weight, 0, 0.02);
      if (m instanceof Linear && m.bias) init.zeros_(m.bias);
    }
  });
  return model;
}

interface Run { before: number; after: number; seconds: number }

async function run(make: () => Promise<CausalLM>, learningRate: number, int8: boolean): Promise<Run> {
  const model = await make();
  if (int8) quantizeModel8bit(model);
  manualSeed(1);
  const peft = getPeftModel(model, new LoraConfig({ r: 16, loraAlpha: 32, targetModules: 'all-linear' }));
  const outputDir = await mkdtemp(join(tmpdir(), 'lorakit-int8-experiment-'));
  const trainer = new Trainer(peft, { outputDir, train, eval: heldOut, padTokenId: 1, maxSteps: steps, batchSize: 8, learningRate, lrScheduler: 'linear', progress: 'none', handleInterrupts: false, seed: 0 });
  const before = trainer.evaluate();
  const start = performance.now();
  const { evalLoss } = await trainer.train();
  const seconds = (performance.now() - start) / 1000;
  await rm(outputDir, { recursive: true, force: true });
  return { before, after: evalLoss!, seconds };
}

const only = option('--only', '');
console.log(`LoRA r=16 all-linear, ${steps} steps of 8 house-style examples, held-out loss on ${heldOut.length} examples\n`);
console.log('| base | held-out loss before (fp32 / int8) | after, fp32 base | after, int8 base | int8 / fp32 - 1 | training time fp32 / int8 |');
console.log('|---|---|---|---|---|---|');
for (const [name, { make, learningRate }] of Object.entries(bases)) {
  if (only && !name.includes(only)) continue;
  const float = await run(make, learningRate, false);
  const int8 = await run(make, learningRate, true);
  const gap = int8.after / float.after - 1;
  console.log(`| ${name} | ${float.before.toFixed(4)} / ${int8.before.toFixed(4)} | ${float.after.toFixed(4)} | ${int8.after.toFixed(4)} | ${(100 * gap).toFixed(2)}% | ${float.seconds.toFixed(1)} s / ${int8.seconds.toFixed(1)} s |`);
}
