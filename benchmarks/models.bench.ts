/**
 * @lorakit/models: load time, forward throughput at 4x512 tokens and greedy
 * generation speed, on tiny-code-llama and on a random checkpoint with
 * SmolLM2-135M's shapes that this script writes in bf16.
 *
 *   npm run bench:models
 */
import { Tensor, noGrad } from '@lorakit/core';
import { AutoModelForCausalLM, generate } from '@lorakit/models';
import { randomCheckpoint, SMOLLM2_SHAPES } from './checkpoints.ts';
import { median } from './stats.ts';

async function measure(name: string, dir: string): Promise<void> {
  const loads: number[] = [];
  let model = await AutoModelForCausalLM.fromPretrained(dir);
  for (let i = 0; i < 3; i++) {
    const start = performance.now();
    model = await AutoModelForCausalLM.fromPretrained(dir);
    loads.push(performance.now() - start);
  }
  const vocab = model.config.vocab_size;
  const inputIds = new Tensor(Int32Array.from({ length: 4 * 512 }, (_, i) => (i * 7919) % vocab), [4, 512]);
  const forwards: number[] = [];
  for (let i = 0; i < 3; i++) {
    const start = performance.now();
    noGrad(() => model.call({ inputIds }));
    forwards.push(performance.now() - start);
  }
  const prompt = Array.from({ length: 16 }, (_, i) => (i * 31) % vocab);
  const newTokens = 64;
  const gens: number[] = [];
  for (let i = 0; i < 2; i++) {
    const start = performance.now();
    generate(model, [prompt], { maxNewTokens: newTokens, eosTokenId: null });
    gens.push(performance.now() - start);
  }
  const params = model.numParameters();
  console.log(`| ${name} | ${(params / 1e6).toFixed(1)}M | ${median(loads).toFixed(0)} ms | ${((2048 / median(forwards)) * 1000).toFixed(0)} | ${((newTokens / median(gens)) * 1000).toFixed(1)} |`);
}

console.log('| model | params | load | forward tokens/s (4x512) | greedy tokens/s (16 + 64) |');
console.log('|---|---|---|---|---|');
await measure('tiny-code-llama (bf16)', 'examples/models/tiny-code-llama');
await measure('SmolLM2-135M shapes, random (bf16)', await randomCheckpoint('benchmarks/out/smollm2-135m-random', SMOLLM2_SHAPES));
