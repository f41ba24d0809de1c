/** The embedded model against the PEFT fixtures made with transformers: logits, tokenizer, greedy generation, loss. */
import test from 'ava';
import { readFile } from 'node:fs/promises';
import { Tensor, noGrad } from '@lorakit/core';
import { SafetensorsFile } from '@lorakit/core/io';
import { AutoModelForCausalLM } from './auto.ts';
import { AutoTokenizer } from './tokenizer.ts';
import { generate } from './generation.ts';
import { FIXTURES, PEFT_FIXTURES, TINY_CODE_LLAMA, maxMaskedDiff } from './testing.ts';

const model = await AutoModelForCausalLM.fromPretrained(TINY_CODE_LLAMA);
const io = await SafetensorsFile.open(`${PEFT_FIXTURES}/codellama_qv_r8/io.safetensors`);
const [inputIds, attentionMask, baseLogits] = await Promise.all(['input_ids', 'attention_mask', 'base_logits'].map((n) => io.read(n)));
await io.close();

test('base logits match transformers to 1e-4 on unpadded positions', (t) => {
  const { logits } = noGrad(() => model.call({ inputIds, attentionMask }));
  const diff = maxMaskedDiff(logits, baseLogits, attentionMask);
  t.true(diff <= 1e-4, `max abs error ${diff}`);
});

test('labels equal to the input ids give transformers loss to 1e-5', async (t) => {
  const file = await SafetensorsFile.open(`${FIXTURES}/tiny-code-llama-loss.safetensors`);
  const reference = (await file.read('loss')).item();
  await file.close();
  const mask = attentionMask.toArray();
  const labels = new Tensor(Int32Array.from(inputIds.toArray(), (id, i) => (mask[i] ? id : -100)), inputIds.shape);
  const { loss } = noGrad(() => model.call({ inputIds, attentionMask, labels }));
  t.true(Math.abs(loss!.item() - reference) <= 1e-5, `loss ${loss!.item()} vs ${reference}`);
});

test('the tokenizer gives the ids of the Hugging Face tokenizer exactly', async (t) => {
  const tokenizer = await AutoTokenizer.fromPretrained(TINY_CODE_LLAMA);
  const cases = JSON.parse(await readFile(`${PEFT_FIXTURES}/tokenization.json`, 'utf8')) as Array<{ text: string; ids: number[] }>;
  for (const { text, ids } of cases) {
    t.deepEqual(tokenizer.encode(text), ids, JSON.stringify(text));
    t.is(tokenizer.decode(ids), text);
  }
  t.is(tokenizer.eosTokenId, 0);
  t.is(tokenizer.padTokenId, 1);
});

test('greedy generation reproduces transformers token for token, alone and batched with left padding', async (t) => {
  const greedy = JSON.parse(await readFile(`${PEFT_FIXTURES}/codellama_train_trajectory/greedy.json`, 'utf8')) as Array<{ prompt_ids: number[]; base_ids: number[] }>;
  for (const g of greedy) t.deepEqual(generate(model, [g.prompt_ids], { maxNewTokens: 40 })[0], g.base_ids);
  const streamed: number[] = [];
  const batched = generate(model, greedy.map((g) => g.prompt_ids), { maxNewTokens: 40, onToken: (tokens) => tokens.forEach(({ row, token }) => row === 1 && streamed.push(token)) });
  t.deepEqual(batched, greedy.map((g) => g.base_ids));
  t.deepEqual(streamed, greedy[1].base_ids.slice(greedy[1].prompt_ids.length));
});

test('generation from weights that hold NaN is an error, not an empty or garbage success', async (t) => {
  const broken = await AutoModelForCausalLM.fromPretrained(TINY_CODE_LLAMA);
  const norm = broken.getSubmodule('model.norm') as unknown as { weight: Tensor };
  norm.weight.values[3] = Number.NaN;
  t.throws(() => generate(broken, [[330, 284, 844]], { maxNewTokens: 4 }), { message: /logits of row 0 at step 0 hold NaN: the model's weights \(or an adapter's\) hold NaN or Infinity/ });
  t.throws(() => generate(broken, [[330, 284, 844]], { maxNewTokens: 4, temperature: 0.7 }), { message: /hold NaN/ });
});

test('sampling is reproducible from a seed and stays within top-k', (t) => {
  const prompt = [330, 284, 844];
  const a = generate(model, [prompt], { maxNewTokens: 12, temperature: 0.9, topK: 5, seed: 3 });
  const b = generate(model, [prompt], { maxNewTokens: 12, temperature: 0.9, topK: 5, seed: 3 });
  const c = generate(model, [prompt], { maxNewTokens: 12, temperature: 0.9, topK: 5, seed: 4 });
  t.deepEqual(a, b);
  t.notDeepEqual(a, c);
  const top1 = generate(model, [prompt], { maxNewTokens: 12, topK: 1, seed: 9 });
  t.deepEqual(top1, generate(model, [prompt], { maxNewTokens: 12 }), 'top-k 1 is greedy');
});

test('stateDict keys equal the checkpoint keys, with lm_head tied to embed_tokens', (t) => {
  const keys = [...model.stateDict().keys()];
  t.true(keys.includes('model.layers.5.self_attn.q_proj.weight'));
  t.is(model.stateDict().get('lm_head.weight'), model.stateDict().get('model.embed_tokens.weight'));
  t.is(model.numParameters(), 5_770_496);
  t.false(model.training);
});

test('explicit position ids equal to the default give the same logits; spread-out ones do not', (t) => {
  const ids = Tensor.fromArray([[330, 284, 844, 264]], 'int32');
  const plain = noGrad(() => model.call({ inputIds: ids }).logits).toArray();
  const same = noGrad(() => model.call({ inputIds: ids, positionIds: Tensor.fromArray([[0, 1, 2, 3]], 'int32') }).logits).toArray();
  const spread = noGrad(() => model.call({ inputIds: ids, positionIds: Tensor.fromArray([[0, 3, 6, 9]], 'int32') }).logits).toArray();
  t.deepEqual(same, plain);
  t.true(spread.some((v, i) => Math.abs(v - plain[i]) > 0.1), 'rotary positions change the attention');
});

test('gradient checkpointing gives the same loss and gradients', (t) => {
  const inputIdsSmall = Tensor.fromArray([[330, 284, 844, 264, 908, 539]], 'int32');
  const run = () => {
    model.zeroGrad();
    model.train();
    model.unfreeze();
    const { loss } = model.call({ inputIds: inputIdsSmall, labels: inputIdsSmall });
    loss!.backward();
    const grads = ['model.layers.0.self_attn.q_proj.weight', 'model.layers.5.mlp.down_proj.weight', 'model.norm.weight'].map((n) => model.namedParameters().find(([k]) => k === n)![1].grad!.toArray());
    model.eval();
    return { loss: loss!.item(), grads };
  };
  const plain = run();
  model.enableGradientCheckpointing();
  const checkpointed = run();
  model.enableGradientCheckpointing(false);
  model.zeroGrad();
  t.is(checkpointed.loss, plain.loss);
  checkpointed.grads.forEach((g, i) => t.true(g.every((v, j) => Math.abs(v - plain.grads[i][j]) <= 1e-6 * (1 + Math.abs(v)))));
});
