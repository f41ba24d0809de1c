/**
 * LoRA on embeddings as PEFT 0.21.2 does it: init, keys, dropout, tied heads, refusals,
 * and the bf16 streamed merge (the values themselves are checked against PEFT by
 * peft-options.test.ts and merge-checkpoint.test.ts on the embedding-* fixtures).
 */
import test from 'ava';
import { cp, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Tensor, noGrad } from '@lorakit/core';
import { SafetensorsFile, f32ToBf16, saveSafetensors, tensorRecord } from '@lorakit/core/io';
import { maxMaskedDiff } from '@lorakit/core/testing';
import { AutoModelForCausalLM, loadConfig, weightLayout } from '@lorakit/models';
import { LoraConfig } from './config.ts';
import { LoraEmbedding } from './lora-embedding.ts';
import { PeftModel, getPeftModel } from './peft-model.ts';
import { expectedAdapterTensors } from './adapter-layout.ts';
import { mergeCheckpoint } from './merge-checkpoint.ts';
import { ADAPTER_FIXTURES, MODEL_FIXTURES, maxAbs, readAll } from './testing.ts';

const LLAMA = `${MODEL_FIXTURES}/llama`;
const TIED = `${MODEL_FIXTURES}/llama-bf16-tied`;
const EMBEDDING_QV = `${ADAPTER_FIXTURES}/embedding-qv`;
const TIED_CASE = `${ADAPTER_FIXTURES}/tied-embedding-regex-rslora`;
const tmp = () => mkdtemp(join(tmpdir(), 'lorakit-embedding-'));

function embeddingOf(peft: PeftModel): LoraEmbedding {
  return peft.model.getSubmodule('model.embed_tokens') as LoraEmbedding;
}

const std = (t: Tensor) => {
  const v = t.toArray() as number[];
  const mean = v.reduce((a, b) => a + b, 0) / v.length;
  return Math.sqrt(v.reduce((a, b) => a + (b - mean) ** 2, 0) / v.length);
};

test('init_lora_weights true and "gaussian" start A at zero and draw B from N(0, 1); false draws both', async (t) => {
  for (const initLoraWeights of [true, 'gaussian'] as const) {
    const layer = embeddingOf(getPeftModel(await AutoModelForCausalLM.fromPretrained(LLAMA), new LoraConfig({ r: 8, targetModules: ['embed_tokens'], initLoraWeights })));
    t.true((layer.lora_embedding_A.get('default')!.toArray() as number[]).every((v) => v === 0), `${initLoraWeights}: A is zero`);
    t.true(Math.abs(std(layer.lora_embedding_B.get('default')!) - 1) < 0.2, `${initLoraWeights}: B ~ N(0, 1)`);
  }
  const layer = embeddingOf(getPeftModel(await AutoModelForCausalLM.fromPretrained(LLAMA), new LoraConfig({ r: 8, targetModules: ['embed_tokens'], initLoraWeights: false })));
  t.true(Math.abs(std(layer.lora_embedding_A.get('default')!) - 1) < 0.1 && Math.abs(std(layer.lora_embedding_B.get('default')!) - 1) < 0.2);
});

test('the factors are [r, num_embeddings] and [embedding_dim, r], named and saved as PEFT names them', async (t) => {
  const config = JSON.parse(await readFile(`${EMBEDDING_QV}/adapter/adapter_config.json`, 'utf8'));
  const peft = getPeftModel(await AutoModelForCausalLM.fromPretrained(LLAMA), new LoraConfig({ r: config.r, loraAlpha: config.lora_alpha, targetModules: config.target_modules }));
  t.deepEqual(peft.trainableParameters().filter(([n]) => n.includes('embed')).map(([n, p]) => [n, p.shape]), [
    ['base_model.model.model.embed_tokens.lora_embedding_A.default', [4, 128]],
    ['base_model.model.model.embed_tokens.lora_embedding_B.default', [32, 4]],
  ]);
  const dir = await tmp();
  await peft.savePretrained(dir);
  const shapes = async (file: string) => [...(await readAll(file))].map(([k, v]) => `${k} ${v.shape.join('x')}`).sort();
  t.deepEqual(await shapes(join(dir, 'adapter_model.safetensors')), await shapes(`${EMBEDDING_QV}/adapter/adapter_model.safetensors`), 'the keys PEFT saved, base_layer.weight included');
});

test('all-linear never picks an embedding, as PEFT\'s all-linear', async (t) => {
  const peft = getPeftModel(await AutoModelForCausalLM.fromPretrained(LLAMA), new LoraConfig({ targetModules: 'all-linear' }));
  t.false(peft.adaptedLayers().some(([name]) => name.includes('embed')));
  t.is(peft.adaptedLayers().length, peft.loraLayers().length);
});

test('lora_dropout is never applied to an embedding\'s LoRA, as in PEFT', async (t) => {
  const peft = getPeftModel(await AutoModelForCausalLM.fromPretrained(LLAMA), new LoraConfig({ targetModules: ['embed_tokens'], loraDropout: 0.5, initLoraWeights: false }));
  const layer = embeddingOf(peft);
  const ids = Tensor.fromArray([[3, 17, 42, 9]], 'int32');
  peft.train();
  const trained = noGrad(() => layer.call(ids));
  peft.eval();
  t.deepEqual(noGrad(() => layer.call(ids)).toArray(), trained.toArray());
  t.true(maxAbs(trained, noGrad(() => layer.base_layer.call(ids))) > 0.1, 'the adapter changes the output');
});

test('on a tied model the head reads the base weight in forward, and the merged shared weight after mergeAndUnload', async (t) => {
  const ref = await readAll(`${TIED_CASE}/reference.safetensors`);
  const peft = await PeftModel.fromPretrained(await AutoModelForCausalLM.fromPretrained(TIED), `${TIED_CASE}/adapter`);
  const model = peft.model as unknown as { lm_head: { weight: Tensor }; model: { embed_tokens: LoraEmbedding } };
  const base = model.model.embed_tokens.base_layer.weight;
  t.is(model.lm_head.weight, base, 'still one tensor');
  const before = base.values.slice();
  t.is(model.lm_head.constructor.name, 'Linear', 'the head is not wrapped');
  const [inputIds, attentionMask] = [ref.get('input_ids')!, ref.get('attention_mask')!];
  t.true(maxMaskedDiff(noGrad(() => peft.call({ inputIds, attentionMask }).logits), ref.get('logits')!, attentionMask) <= 1e-4, 'PEFT\'s logits: the head used the base weight');
  t.deepEqual(base.values, before, 'a forward leaves the shared weight as it was');
  const merged = peft.mergeAndUnload() as unknown as { lm_head: { weight: Tensor }; model: { embed_tokens: { weight: Tensor } } };
  t.is(merged.lm_head.weight, merged.model.embed_tokens.weight, 'still tied after the merge');
  t.true(maxAbs(merged.lm_head.weight, ref.get('merged.model.embed_tokens.weight')!) <= 1e-5, 'the head holds PEFT\'s merged embedding');
  t.true(maxAbs(merged.lm_head.weight, new Tensor(before, base.shape)) > 1e-3, 'so the head changed');
});

test('unmerge restores the embedding', async (t) => {
  const peft = await PeftModel.fromPretrained(await AutoModelForCausalLM.fromPretrained(LLAMA), `${EMBEDDING_QV}/adapter`);
  const weight = embeddingOf(peft).base_layer.weight;
  const before = new Tensor(weight.values.slice(), weight.shape);
  peft.merge();
  t.true(maxAbs(weight, before) > 1e-3);
  peft.unmerge();
  t.true(maxAbs(weight, before) <= 1e-6);
});

test('an adapter saved without the embedding\'s base weight (save_embedding_layers=False) loads and merges the same', async (t) => {
  const adapter = join(await tmp(), 'adapter');
  await cp(`${EMBEDDING_QV}/adapter`, adapter, { recursive: true });
  const tensors = await readAll(join(adapter, 'adapter_model.safetensors'));
  t.true(tensors.delete('base_model.model.model.embed_tokens.base_layer.weight'));
  await saveSafetensors(join(adapter, 'adapter_model.safetensors'), new Map([...tensors].map(([k, v]) => [k, tensorRecord(v, 'F32')])));
  const ref = await readAll(`${EMBEDDING_QV}/reference.safetensors`);
  const [inputIds, attentionMask] = [ref.get('input_ids')!, ref.get('attention_mask')!];
  const peft = await PeftModel.fromPretrained(await AutoModelForCausalLM.fromPretrained(LLAMA), adapter);
  t.true(maxMaskedDiff(noGrad(() => peft.call({ inputIds, attentionMask }).logits), ref.get('logits')!, attentionMask) <= 1e-4);
  const out = join(await tmp(), 'merged');
  await mergeCheckpoint({ model: LLAMA, adapters: [{ dir: adapter }], out, dtype: 'F32' });
  const merged = await readAll(join(out, 'model.safetensors'));
  t.true(maxAbs(merged.get('model.embed_tokens.weight')!, ref.get('merged.model.embed_tokens.weight')!) <= 1e-5);
});

test('the streamed bf16 merge of a tied embedding adapter is the float32 merge rounded to bf16, bit for bit', async (t) => {
  const dir = await tmp();
  await mergeCheckpoint({ model: TIED, adapters: [{ dir: `${TIED_CASE}/adapter` }], out: join(dir, 'f32'), dtype: 'F32' });
  await mergeCheckpoint({ model: TIED, adapters: [{ dir: `${TIED_CASE}/adapter` }], out: join(dir, 'bf16') });
  const [wide, narrow] = await Promise.all(['f32', 'bf16'].map((d) => SafetensorsFile.open(join(dir, d, 'model.safetensors'))));
  t.false(narrow.names().includes('lm_head.weight'), 'the tied head is not stored');
  for (const name of ['model.embed_tokens.weight', 'model.layers.0.self_attn.v_proj.weight']) {
    t.is(narrow.entry(name).dtype, 'BF16');
    const expected = Uint16Array.from((await wide.read(name)).values as Float32Array, f32ToBf16);
    t.deepEqual(new Uint16Array((await narrow.readBytes(name)).slice().buffer), expected, name);
  }
  await Promise.all([wide.close(), narrow.close()]);
});

test('DoRA on an embedding is refused, naming the module and the option, when adding, loading and merging', async (t) => {
  const config = new LoraConfig({ targetModules: ['embed_tokens', 'q_proj'], useDora: true });
  const detail = { name: 'UnsupportedAdapterFeature', message: /model\.embed_tokens is an Embedding: use_dora/ };
  const model = await AutoModelForCausalLM.fromPretrained(LLAMA);
  t.throws(() => getPeftModel(model, config), detail);
  const layout = weightLayout(await loadConfig(LLAMA));
  t.throws(() => expectedAdapterTensors(layout, config), detail);
});

test('ensure_weight_tying with an embedding target is refused', async (t) => {
  const adapter = join(await tmp(), 'adapter');
  await cp(`${TIED_CASE}/adapter`, adapter, { recursive: true });
  const json = JSON.parse(await readFile(join(adapter, 'adapter_config.json'), 'utf8'));
  await writeFile(join(adapter, 'adapter_config.json'), JSON.stringify({ ...json, ensure_weight_tying: true }));
  await t.throwsAsync(PeftModel.fromPretrained(await AutoModelForCausalLM.fromPretrained(TIED), adapter), { name: 'UnsupportedAdapterFeature', message: /ensure_weight_tying/ });
});

test('combining adapters that adapt an embedding is refused', async (t) => {
  const peft = await PeftModel.fromPretrained(await AutoModelForCausalLM.fromPretrained(LLAMA), `${EMBEDDING_QV}/adapter`);
  t.throws(() => peft.addWeightedAdapter(['default'], [1], 'combined', 'cat'), { message: /model\.embed_tokens is an embedding with LoRA/ });
});
