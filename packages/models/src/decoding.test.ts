/**
 * generate() on the decoder graph against generate() op by op (the eager path, itself checked against
 * transformers in models.test.ts): padded batches, sampling, weights changed in place, hooks.
 */
import test from 'ava';
import { noGrad } from '@lorakit/core';
import { AutoModelForCausalLM } from './auto.ts';
import type { LlamaForCausalLM } from './llama/model.ts';
import { generate } from './generation.ts';
import { TINY_CODE_LLAMA } from './testing.ts';

const PROMPTS = [[330, 284, 844, 264, 908, 539, 9], [79, 328, 200]]; // left-padded together

test('the decoder graph generates what op-by-op decoding does, for a padded batch, greedy and sampled', async (t) => {
  const model = await AutoModelForCausalLM.fromPretrained(TINY_CODE_LLAMA);
  for (const options of [{}, { temperature: 0.9, topP: 0.95, seed: 7 }]) {
    const eager = generate(model, PROMPTS, { maxNewTokens: 30, eosTokenId: null, decoder: 'eager', ...options });
    t.deepEqual(generate(model, PROMPTS, { maxNewTokens: 30, eosTokenId: null, ...options }), eager);
  }
});

test('the decoder graph sees weights changed in place after its session was made', async (t) => {
  const model = (await AutoModelForCausalLM.fromPretrained(TINY_CODE_LLAMA)) as LlamaForCausalLM;
  const before = generate(model, PROMPTS, { maxNewTokens: 20, eosTokenId: null });
  noGrad(() => model.model.layers[0].mlp.down_proj.weight.values.forEach((v, i, w) => (w[i] = 3 * v)));
  const after = generate(model, PROMPTS, { maxNewTokens: 20, eosTokenId: null });
  t.notDeepEqual(after, before);
  t.deepEqual(after, generate(model, PROMPTS, { maxNewTokens: 20, eosTokenId: null, decoder: 'eager' }));
});

test('a model with a forward hook decodes op by op, and says so once', async (t) => {
  const model = (await AutoModelForCausalLM.fromPretrained(TINY_CODE_LLAMA)) as LlamaForCausalLM;
  let calls = 0;
  model.model.layers[1].registerForwardHook(() => void calls++);
  const lines: string[] = [];
  const error = console.error;
  console.error = (line: string) => lines.push(line);
  try {
    generate(model, PROMPTS, { maxNewTokens: 3 });
    generate(model, PROMPTS, { maxNewTokens: 3 });
  } finally {
    console.error = error;
  }
  t.is(calls, 6, 'the hook ran at every step');
  t.deepEqual(lines, ['lorakit: generate decodes op by op, not on the decoder graph: a forward hook on model.layers.1']);
});

test('q4 decoding needs the decoder graph', async (t) => {
  const model = await AutoModelForCausalLM.fromPretrained(TINY_CODE_LLAMA);
  t.throws(() => generate(model, PROMPTS, { dtype: 'q4', decoder: 'eager' }), { message: /dtype q4 runs on the decoder graph/ });
});
