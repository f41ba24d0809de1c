/** Checkpoints quantized and saved by transformers + bitsandbytes load as Linear4bit layers and give their logits. */
import test from 'ava';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { noGrad } from '@lorakit/core';
import { Linear4bit } from '@lorakit/core/nn';
import { SafetensorsFile } from '@lorakit/core/io';
import { maxMaskedDiff } from '@lorakit/core/testing';
import { AutoModelForCausalLM } from './auto.ts';
import { saveModel } from './save.ts';
import { FIXTURES } from './testing.ts';

for (const name of ['bnb-llama-nf4-dq', 'bnb-mistral-fp4', 'bnb-gemma2-nf4-dq', 'bnb-phi3-nf4']) {
  test(`${name}: loads as Linear4bit and matches the bitsandbytes model's logits`, async (t) => {
    const model = await AutoModelForCausalLM.fromPretrained(`${FIXTURES}/${name}`);
    t.true(model.getSubmodule('model.layers.1.mlp.down_proj') instanceof Linear4bit);
    t.is(model.getSubmodule('lm_head').constructor.name, 'Linear');
    const ref = await SafetensorsFile.open(`${FIXTURES}/${name}/reference.safetensors`);
    const [inputIds, attentionMask, logits] = await Promise.all(['input_ids', 'attention_mask', 'logits'].map((n) => ref.read(n)));
    await ref.close();
    const out = noGrad(() => model.call({ inputIds, attentionMask }).logits);
    const diff = maxMaskedDiff(out, logits, attentionMask);
    t.true(diff <= 1e-4, `max abs error ${diff}`);
  });
}

test('a quantized model saves back in bitsandbytes\' format and reloads to the same logits', async (t) => {
  const model = await AutoModelForCausalLM.fromPretrained(`${FIXTURES}/bnb-llama-nf4-dq`);
  const dir = await mkdtemp(join(tmpdir(), 'lorakit-bnb-'));
  await saveModel(model, dir);
  const config = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8'));
  t.is(config.quantization_config.quant_method, 'bitsandbytes');
  const file = await SafetensorsFile.open(join(dir, 'model.safetensors'));
  t.is(file.entry('model.layers.0.self_attn.q_proj.weight').dtype, 'U8');
  t.is(file.entry('model.layers.0.self_attn.q_proj.weight.absmax').dtype, 'U8');
  t.is(file.entry('model.layers.0.self_attn.q_proj.weight.nested_absmax').dtype, 'F32');
  await file.close();
  const reloaded = await AutoModelForCausalLM.fromPretrained(dir);
  const ref = await SafetensorsFile.open(`${FIXTURES}/bnb-llama-nf4-dq/reference.safetensors`);
  const inputIds = await ref.read('input_ids');
  await ref.close();
  t.deepEqual(noGrad(() => reloaded.call({ inputIds }).logits).toArray(), noGrad(() => model.call({ inputIds }).logits).toArray());
});
