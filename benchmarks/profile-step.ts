/**
 * Where a training step's time goes: one LoRA step (r=16, all linear, AdamW) on a random SmolLM2-135M-shaped
 * model (or a checkpoint), each native kernel's time and calls summed by kind, and what is left outside them
 * (JavaScript, the optimizer, the autograd tape). With --forward: one forward of the model without gradients,
 * the logits of every position computed, as bench:compare's forward rows.
 *
 *   npm run bench:profile [-- --steps 1] [-- --tokens 4x512] [-- --layers 30] [-- --model examples/models/tiny-code-llama] [-- --qlora | --int8] [-- --forward] [-- --eager]
 *
 * Decoder layers run compiled (as Trainer runs them) unless --eager is given.
 */
import { Tensor, manualSeed, noGrad } from '@lorakit/core';
import { NativeKernel } from '@lorakit/core/native';
import { AdamW } from '@lorakit/core/optim';
import { AutoModelForCausalLM, modelForConfig } from '@lorakit/models';
import { LoraConfig, getPeftModel, quantizeModel, quantizeModel8bit } from '@lorakit/adapters';
import { SMOLLM2_SHAPES } from './checkpoints.ts';

const option = (name: string, fallback: string) => (process.argv.includes(name) ? process.argv[process.argv.indexOf(name) + 1] : fallback);
const [batch, sequence] = option('--tokens', '4x512').split('x').map(Number);
const layers = Number(option('--layers', String(SMOLLM2_SHAPES.num_hidden_layers)));
const checkpoint = option('--model', '');

manualSeed(0);
const model = checkpoint ? await AutoModelForCausalLM.fromPretrained(checkpoint) : modelForConfig({ ...SMOLLM2_SHAPES, num_hidden_layers: layers });
const qlora = process.argv.includes('--qlora');
if (qlora) await quantizeModel(model, { quantType: 'nf4', doubleQuant: true });
const int8 = process.argv.includes('--int8');
if (int8) quantizeModel8bit(model);
const name = `${checkpoint || `SmolLM2-135M shapes with ${layers} layers`}${qlora ? ', NF4 base' : int8 ? ', LLM.int8 base' : ''}${process.argv.includes('--eager') ? ', eager' : ', compiled layers'}`;
const forwardOnly = process.argv.includes('--forward');
model.enableCompiledLayers(!process.argv.includes('--eager'));
const peft = forwardOnly ? null : getPeftModel(model, new LoraConfig({ r: 16, loraAlpha: 32, targetModules: 'all-linear' }));
const optimizer = peft === null ? null : new AdamW(peft.trainableParameters().map(([, p]) => p), { lr: 1e-4 });
const inputIds = new Tensor(Int32Array.from({ length: batch * sequence }, (_, i) => (i * 7919 + 13) % model.config.vocab_size), [batch, sequence]);
peft?.train();

/** Milliseconds and calls per kernel kind (the key up to its first colon). */
const kernels = new Map<string, { ms: number; calls: number }>();
const run = NativeKernel.prototype.run;
NativeKernel.prototype.run = function (inputs) {
  const start = performance.now();
  const outputs = run.call(this, inputs);
  const kind = this.key.split(':')[0];
  const entry = kernels.get(kind) ?? { ms: 0, calls: 0 };
  entry.ms += performance.now() - start;
  entry.calls++;
  kernels.set(kind, entry);
  return outputs;
};

function step(): { forward: number; total: number } {
  const start = performance.now();
  if (peft === null || optimizer === null) {
    noGrad(() => model.call({ inputIds }));
    return { forward: performance.now() - start, total: performance.now() - start };
  }
  const { loss } = peft.call({ inputIds, labels: inputIds, logitsToKeep: 0 });
  const forward = performance.now() - start;
  loss!.backward();
  optimizer.step();
  optimizer.zeroGrad();
  return { forward, total: performance.now() - start };
}

step(); // sessions are made here (and compiled layers traced)
step();
kernels.clear();
const steps = Number(option('--steps', '1'));
const cpu = process.cpuUsage();
const timings = Array.from({ length: steps }, step).sort((a, b) => a.total - b.total);
const { user: userSum, system: systemSum } = process.cpuUsage(cpu);
const [user, system] = [userSum / steps, systemSum / steps];
const { forward, total } = timings[Math.floor(steps / 2)]; // the median step; kernel times are means
for (const entry of kernels.values()) [entry.ms, entry.calls] = [entry.ms / steps, entry.calls / steps];
const native = [...kernels.values()].reduce((n, k) => n + k.ms, 0);
console.log(`${steps === 1 ? 'one' : `the median of ${steps}`} ${forwardOnly ? 'forward' : qlora ? 'QLoRA step' : 'LoRA step'}, ${name}, ${batch}x${sequence} tokens: ${(total / 1000).toFixed(2)} s (forward ${(forward / 1000).toFixed(2)} s);`);
console.log(`CPU ${(user / 1e6).toFixed(1)} s user, ${(system / 1e6).toFixed(1)} s system\n`);
console.log('| kernel | ms | calls | share |\n|---|---|---|---|');
for (const [kind, { ms, calls }] of [...kernels].sort((a, b) => b[1].ms - a[1].ms)) console.log(`| ${kind} | ${ms.toFixed(0)} | ${calls} | ${((100 * ms) / total).toFixed(0)}% |`);
console.log(`| outside the kernels | ${(total - native).toFixed(0)} | | ${((100 * (total - native)) / total).toFixed(0)}% |`);
