/**
 * Compiled decoder layers against the eager ones on real models: a LoRA step's
 * loss and LoRA gradients on every architecture fixture (with dropout and a
 * padded row), on 4-bit and 8-bit bases, and forwards after merging and
 * unmerging the adapter. Each compiled run must really run compiled: no layer
 * may fall back, and the compiled sessions must have run.
 * NOTE: serial: the compile reporter, the kernel counter and the generator are global.
 */
import test from 'ava';
import { Tensor, manualSeed, setCompileReporter, type Parameter } from '@lorakit/core';
import { NativeKernel } from '@lorakit/core/native';
import { relativeErrorOf } from '@lorakit/core/testing';
import { AutoModelForCausalLM, type CausalLM } from '@lorakit/models';
import { LoraConfig } from './config.ts';
import { getPeftModel, type PeftModel } from './peft-model.ts';
import { quantizeModel, quantizeModel8bit } from './quantize-model.ts';
import { MODEL_FIXTURES, TINY_CODE_LLAMA } from './testing.ts';

const eagerLines: string[] = [];
setCompileReporter((line) => eagerLines.push(line));

let compiledRuns = 0;
const run = NativeKernel.prototype.run;
NativeKernel.prototype.run = function (inputs) {
  if (this.key.startsWith('compiled:')) compiledRuns++;
  return run.call(this, inputs);
};

async function adapted(path: string, prepare: (model: CausalLM) => unknown = () => undefined): Promise<{ model: CausalLM; peft: PeftModel; trainable: Array<[string, Parameter]> }> {
  manualSeed(0);
  const model = await AutoModelForCausalLM.fromPretrained(path);
  await prepare(model);
  const peft = getPeftModel(model, new LoraConfig({ r: 4, loraAlpha: 8, targetModules: 'all-linear', loraDropout: 0.1, initLoraWeights: 'gaussian' }));
  const trainable = peft.trainableParameters();
  for (const [, p] of trainable) p.values.forEach((_, i, a) => (a[i] = Math.sin(i * 0.37 + a.length) * 0.05)); // B ≠ 0: every path carries gradient
  peft.train();
  return { model, peft, trainable };
}

/** The loss and LoRA gradients of one step on a batch with a left-padded row, dropout drawn from seed 5. */
function step({ model, peft, trainable }: Awaited<ReturnType<typeof adapted>>, compiled: boolean, length = 7) {
  model.enableCompiledLayers(compiled);
  const inputIds = new Tensor(Int32Array.from({ length: 2 * length }, (_, i) => (i * 7919 + 13) % model.config.vocab_size), [2, length]);
  const attentionMask = new Tensor(Int32Array.from({ length: 2 * length }, (_, i) => (i < 2 ? 0 : 1)), [2, length]);
  manualSeed(5);
  const { loss } = peft.call({ inputIds, attentionMask, labels: inputIds, logitsToKeep: 0 });
  loss!.backward();
  const gradients = trainable.map(([, p]) => p.grad!);
  peft.zeroGrad();
  return { loss: loss!.item(), gradients };
}

const layers = (model: CausalLM) => model.newCache().layers.length;

function worstError(a: readonly Tensor[], b: readonly Tensor[]): number {
  return Math.max(...a.map((t, i) => relativeErrorOf(t, b[i])));
}

/** The eager step, then three compiled ones (the first traces): each equal to eager within 1e-5 relative. */
async function compareSteps(t: import('ava').ExecutionContext, path: string, prepare?: (model: CausalLM) => unknown): Promise<void> {
  const block = await adapted(path, prepare);
  const eager = step(block, false);
  eagerLines.length = 0;
  compiledRuns = 0;
  for (let i = 0; i < 3; i++) {
    const compiled = step(block, true);
    t.true(Math.abs(compiled.loss - eager.loss) <= 1e-5 * Math.abs(eager.loss), `${path} step ${i}: loss ${compiled.loss} vs ${eager.loss}`);
    const error = worstError(compiled.gradients, eager.gradients);
    t.true(error < 1e-5, `${path} step ${i}: LoRA gradients off by ${error}`);
  }
  t.deepEqual(eagerLines, [], 'no layer fell back');
  t.true(compiledRuns >= 2 * 2 * layers(block.model), `${path}: ${compiledRuns} compiled runs`); // forward and backward of each layer, twice
}

const FAMILIES = ['llama', 'mistral', 'qwen2', 'qwen3', 'gemma', 'gemma2', 'gemma3_text', 'granite', 'olmo2', 'phi3', 'smollm3', 'gpt2'];
for (const family of FAMILIES) {
  test.serial(`compiled ${family} layers give eager's loss and LoRA gradients (dropout, a padded row)`, async (t) => {
    await compareSteps(t, `${MODEL_FIXTURES}/${family}`);
  });
}

test.serial('compiled layers on a 4-bit (NF4, double quant) base give eager\'s loss and LoRA gradients', async (t) => {
  await compareSteps(t, TINY_CODE_LLAMA, (model) => quantizeModel(model, { quantType: 'nf4', doubleQuant: true }));
});

test.serial('compiled layers on an 8-bit base give eager\'s loss and LoRA gradients', async (t) => {
  await compareSteps(t, TINY_CODE_LLAMA, (model) => quantizeModel8bit(model));
});

test.serial('compiled layers with gradient checkpointing (the forward recomputed inside the backward graph) give eager\'s loss and LoRA gradients', async (t) => {
  await compareSteps(t, `${MODEL_FIXTURES}/qwen2`, (model) => model.enableGradientCheckpointing());
});

test.serial('merging and unmerging the adapter traces the layers again, and they compute what eager ones do', async (t) => {
  const block = await adapted(`${MODEL_FIXTURES}/llama`);
  step(block, true);
  step(block, true); // traced, then compiled
  block.peft.merge();
  const inputIds = Tensor.fromArray([[3, 1, 4, 1, 5, 9]], 'int32');
  const logits = (compiled: boolean) => {
    block.model.enableCompiledLayers(compiled);
    return block.peft.call({ inputIds }).logits; // nothing trains in a merged layer: traced forward only
  };
  const eager = logits(false);
  logits(true);
  compiledRuns = 0;
  const merged = logits(true);
  t.is(compiledRuns, layers(block.model));
  t.true(relativeErrorOf(merged, eager) < 1e-5);
  block.peft.unmerge();
  const unmerged = step(block, false);
  for (let i = 0; i < 2; i++) t.true(worstError(step(block, true).gradients, unmerged.gradients) < 1e-5);
});

test.serial('a longer batch is traced again, and both lengths run compiled', async (t) => {
  const block = await adapted(`${MODEL_FIXTURES}/llama`);
  const eager = [step(block, false, 7), step(block, false, 12)];
  compiledRuns = 0;
  for (let i = 0; i < 2; i++) {
    const [short, long] = [step(block, true, 7), step(block, true, 12)];
    t.true(worstError(short.gradients, eager[0].gradients) < 1e-5);
    t.true(worstError(long.gradients, eager[1].gradients) < 1e-5);
  }
  t.true(compiledRuns >= 4 * layers(block.model));
});
