/** The streaming merge (lora merge): PEFT's merged weights, refusals, sharding, nothing left on failure. */
import test from 'ava';
import { readdirSync } from 'node:fs';
import { cp, mkdir, mkdtemp, readFile, readdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Tensor, init, noGrad } from '@lorakit/core';
import { SafetensorsFile, f32ToBf16 } from '@lorakit/core/io';
import { maxMaskedDiff } from '@lorakit/core/testing';
import { AutoModelForCausalLM, checkpointKeys } from '@lorakit/models';
import { mergeCheckpoint } from './merge-checkpoint.ts';
import { LoraConfig } from './config.ts';
import { PeftModel, getPeftModel } from './peft-model.ts';
import { ADAPTER_FIXTURES, MODEL_FIXTURES, PEFT_FIXTURES, TINY_CODE_LLAMA, maxAbs } from './testing.ts';

const QV = `${PEFT_FIXTURES}/codellama_qv_r8`;
const tmp = () => mkdtemp(join(tmpdir(), 'lorakit-merge-'));

test('merging PEFT\'s adapter reproduces PEFT\'s merged weights and logits', async (t) => {
  const out = join(await tmp(), 'merged');
  const result = await mergeCheckpoint({ model: TINY_CODE_LLAMA, adapters: [{ dir: `${QV}/adapter` }], out, dtype: 'F32' });
  t.is(result.mergedTensors, 12);
  const merged = await SafetensorsFile.open(join(out, 'model.safetensors'));
  const reference = await SafetensorsFile.open(`${QV}/merged_subset.safetensors`);
  for (const name of reference.names()) t.true(maxAbs(await merged.read(name), await reference.read(name)) <= 1e-5, name);
  await Promise.all([merged.close(), reference.close()]);
  const model = await AutoModelForCausalLM.fromPretrained(out);
  const io = await SafetensorsFile.open(`${QV}/io.safetensors`);
  const [inputIds, attentionMask, mergedLogits] = await Promise.all(['input_ids', 'attention_mask', 'merged_logits'].map((n) => io.read(n)));
  await io.close();
  t.true(maxMaskedDiff(noGrad(() => model.call({ inputIds, attentionMask }).logits), mergedLogits, attentionMask) <= 1e-4);
  t.true((await readdir(out)).includes('tokenizer.json'));
});

test('a sharded merge writes transformers-style shards with an index', async (t) => {
  const out = join(await tmp(), 'sharded');
  const result = await mergeCheckpoint({ model: TINY_CODE_LLAMA, adapters: [{ dir: `${QV}/adapter` }], out, maxShardSize: 3_000_000 });
  t.true(result.files.includes('model.safetensors.index.json'));
  const model = await AutoModelForCausalLM.fromPretrained(out);
  t.is(model.numParameters(), 5_770_496);
});

test('the output may not be the model folder, inside it, or a folder with files', async (t) => {
  await t.throwsAsync(mergeCheckpoint({ model: TINY_CODE_LLAMA, adapters: [{ dir: `${QV}/adapter` }], out: TINY_CODE_LLAMA }), { name: 'OutputIsInput' });
  await t.throwsAsync(mergeCheckpoint({ model: TINY_CODE_LLAMA, adapters: [{ dir: `${QV}/adapter` }], out: join(TINY_CODE_LLAMA, 'merged') }), { name: 'OutputIsInput' });
  const full = await tmp();
  await mkdir(join(full, 'something'));
  await t.throwsAsync(mergeCheckpoint({ model: TINY_CODE_LLAMA, adapters: [{ dir: `${QV}/adapter` }], out: full }), { name: 'OutputExists' });
});

test('an adapter for another model fails before writing, and leaves nothing behind', async (t) => {
  const parent = await tmp();
  const error = await t.throwsAsync(mergeCheckpoint({ model: `${MODEL_FIXTURES}/llama-rope-linear`, adapters: [{ dir: `${QV}/adapter` }], out: join(parent, 'merged') }));
  t.is(error?.name, 'AdapterKeyMismatch');
  t.deepEqual(await readdir(parent), []);
});

// Every option PEFT merges differently (DoRA, fan_in_fan_out, rsLoRA with patterns, trained biases,
// modules_to_save): the streamed checkpoint gives PEFT's merged logits, and, where the reference holds
// them (`merged.<name>`, the all-linear cases of the Llama families), merge_and_unload()'s weights (1e-5).
for (const name of readdirSync(ADAPTER_FIXTURES).filter((n) => !n.endsWith('.json'))) {
  test(`the streamed merge of the ${name} adapter gives PEFT's merged logits`, async (t) => {
    const dir = `${ADAPTER_FIXTURES}/${name}`;
    const { base } = JSON.parse(await readFile(`${dir}/case.json`, 'utf8')) as { base: string };
    const out = join(await tmp(), 'merged');
    await mergeCheckpoint({ model: `${MODEL_FIXTURES}/${base}`, adapters: [{ dir: `${dir}/adapter` }], out, dtype: 'F32' });
    const reference = await SafetensorsFile.open(`${dir}/reference.safetensors`);
    const [inputIds, attentionMask, mergedLogits] = await Promise.all(['input_ids', 'attention_mask', 'merged_logits'].map((n) => reference.read(n)));
    const mergedFile = await SafetensorsFile.open(join(out, 'model.safetensors'));
    for (const key of reference.names().filter((k) => k.startsWith('merged.'))) {
      const error = maxAbs(await mergedFile.read(key.slice(7)), await reference.read(key));
      t.true(error <= 1e-5, `${key.slice(7)}: max abs error ${error}`);
    }
    await Promise.all([reference.close(), mergedFile.close()]);
    const model = await AutoModelForCausalLM.fromPretrained(out);
    t.true(maxMaskedDiff(noGrad(() => model.call({ inputIds, attentionMask }).logits), mergedLogits, attentionMask) <= 1e-4);
  });
}

// One owner for the merge arithmetic: the stream and LoraLinear.merge give the same float32 bits.
for (const name of readdirSync(ADAPTER_FIXTURES).filter((n) => !n.endsWith('.json'))) {
  test(`the streamed merge of the ${name} adapter has the bits of mergeAndUnload`, async (t) => {
    const dir = `${ADAPTER_FIXTURES}/${name}`;
    const { base } = JSON.parse(await readFile(`${dir}/case.json`, 'utf8')) as { base: string };
    const out = join(await tmp(), 'merged');
    await mergeCheckpoint({ model: `${MODEL_FIXTURES}/${base}`, adapters: [{ dir: `${dir}/adapter` }], out, dtype: 'F32' });
    const peft = await PeftModel.fromPretrained(await AutoModelForCausalLM.fromPretrained(`${MODEL_FIXTURES}/${base}`, { onWarning: () => {} }), `${dir}/adapter`);
    const state = peft.mergeAndUnload().stateDict();
    const keys = checkpointKeys(peft.config.model_type); // a gemma3 checkpoint's stored keys are not the module names
    const merged = await SafetensorsFile.open(join(out, 'model.safetensors'));
    for (const key of merged.names().filter((k) => keys.nameOf(k) !== null)) {
      const [a, b] = [(await merged.read(key)).values, state.get(keys.nameOf(key)!)!.values];
      t.true(a.length === b.length && a.every((v, i) => Object.is(v, b[i])), key);
    }
    await merged.close();
  });
}

// The families added to the Llama decoder: an all-linear adapter with non-zero B, saved, merged by the
// stream and reloaded, gives the adapted model's logits.
for (const family of ['qwen3', 'smollm3', 'granite', 'gemma', 'gemma2', 'gemma3_text', 'phi3', 'olmo2']) {
  test(`an all-linear adapter on ${family} merges into a checkpoint with the adapted logits`, async (t) => {
    const peft = getPeftModel(await AutoModelForCausalLM.fromPretrained(`${MODEL_FIXTURES}/${family}`), new LoraConfig({ r: 4, loraAlpha: 8, targetModules: 'all-linear' }));
    noGrad(() => peft.loraLayers().forEach(([, layer]) => init.normal_(layer.lora_B.get('default')!.weight, 0, 0.05)));
    const dir = await tmp();
    await peft.savePretrained(join(dir, 'adapter'));
    await mergeCheckpoint({ model: `${MODEL_FIXTURES}/${family}`, adapters: [{ dir: join(dir, 'adapter') }], out: join(dir, 'merged'), dtype: 'F32' });
    const inputIds = Tensor.fromArray([[3, 17, 42, 9, 100, 5]], 'int32');
    const adapted = noGrad(() => peft.call({ inputIds }).logits);
    const merged = await AutoModelForCausalLM.fromPretrained(join(dir, 'merged'));
    t.true(maxAbs(adapted, peft.withAdapterDisabled(() => noGrad(() => peft.call({ inputIds }).logits))) > 1e-3, 'the adapter changes the output');
    t.true(maxAbs(noGrad(() => merged.call({ inputIds }).logits), adapted) <= 1e-4);
  });
}

test('a GPT-2 adapter saved with fan_in_fan_out false still merges transposed, as loading does', async (t) => {
  const fixture = `${ADAPTER_FIXTURES}/gpt2-fan-in-fan-out-lora-only-bias/adapter`;
  const adapter = join(await tmp(), 'adapter');
  await cp(fixture, adapter, { recursive: true });
  const config = JSON.parse(await readFile(join(adapter, 'adapter_config.json'), 'utf8'));
  await writeFile(join(adapter, 'adapter_config.json'), JSON.stringify({ ...config, fan_in_fan_out: false }));
  const dir = await tmp();
  await mergeCheckpoint({ model: `${MODEL_FIXTURES}/gpt2`, adapters: [{ dir: fixture }], out: join(dir, 'saved-true'), dtype: 'F32' });
  await mergeCheckpoint({ model: `${MODEL_FIXTURES}/gpt2`, adapters: [{ dir: adapter }], out: join(dir, 'saved-false'), dtype: 'F32', onWarning: () => {} });
  const [a, b] = await Promise.all(['saved-true', 'saved-false'].map((d) => readFile(join(dir, d, 'model.safetensors'))));
  t.true(a.equals(b));
});

test('a bf16 merge equals the float32 merge rounded to bf16, bit for bit', async (t) => {
  const dir = await tmp();
  await mergeCheckpoint({ model: TINY_CODE_LLAMA, adapters: [{ dir: `${QV}/adapter`, weight: 0.7 }], out: join(dir, 'f32'), dtype: 'F32' });
  await mergeCheckpoint({ model: TINY_CODE_LLAMA, adapters: [{ dir: `${QV}/adapter`, weight: 0.7 }], out: join(dir, 'bf16') });
  const [wide, narrow] = await Promise.all(['f32', 'bf16'].map((d) => SafetensorsFile.open(join(dir, d, 'model.safetensors'))));
  const name = 'model.layers.3.self_attn.v_proj.weight';
  t.is(narrow.entry(name).dtype, 'BF16');
  const expected = Uint16Array.from((await wide.read(name)).values as Float32Array, f32ToBf16);
  const actual = new Uint16Array((await narrow.readBytes(name)).slice().buffer);
  t.deepEqual(actual, expected);
  await Promise.all([wide.close(), narrow.close()]);
});
