/**
 * Adapters on Gemma 3's multimodal checkpoint (model_type "gemma3"), which lorakit reads as its language model:
 * module names are transformers' in-memory ones (model.language_model.*), the merged checkpoint keeps the input's
 * own keys (language_model.model.*) and its vision tensors byte for byte.
 */
import test from 'ava';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Tensor, init, noGrad } from '@lorakit/core';
import { Checkpoint, SafetensorsFile, saveSafetensors, tensorRecord } from '@lorakit/core/io';
import { AutoModelForCausalLM, saveModel } from '@lorakit/models';
import { mergeCheckpoint } from './merge-checkpoint.ts';
import { LoraConfig } from './config.ts';
import { PeftModel, getPeftModel } from './peft-model.ts';
import { quantizeModel } from './quantize-model.ts';
import { MODEL_FIXTURES, maxAbs } from './testing.ts';

const GEMMA3 = `${MODEL_FIXTURES}/gemma3`;
const VISION = /^(vision_tower|multi_modal_projector)\./;
const quiet = { onWarning: () => {} };

async function adaptedGemma3() {
  const peft = getPeftModel(await AutoModelForCausalLM.fromPretrained(GEMMA3, quiet), new LoraConfig({ r: 4, loraAlpha: 8, targetModules: 'all-linear' }));
  noGrad(() => peft.loraLayers().forEach(([, layer]) => init.normal_(layer.lora_B.get('default')!.weight, 0, 0.05)));
  const dir = await mkdtemp(join(tmpdir(), 'lorakit-gemma3-'));
  await peft.savePretrained(join(dir, 'adapter'));
  return { peft, dir };
}

test('an adapter on gemma3 names the language model\'s modules as transformers does in memory', async (t) => {
  const { dir } = await adaptedGemma3();
  const file = await SafetensorsFile.open(join(dir, 'adapter', 'adapter_model.safetensors'));
  const names = file.names();
  await file.close();
  t.true(names.includes('base_model.model.model.language_model.layers.0.self_attn.q_proj.lora_A.weight'));
  t.true(names.includes('base_model.model.model.language_model.layers.1.mlp.down_proj.lora_B.weight'));
  t.true(names.every((n) => n.startsWith('base_model.model.model.language_model.layers.')), names.find((n) => !n.includes('.language_model.layers.')));
  t.is(names.length, 2 * 7 * 2); // 2 layers x 7 linears x (A, B); the tied lm_head is never "all-linear"
});

test('an adapter on gemma3 saves the adapted modules\' names as target_modules, which PEFT would match in the vision tower too', async (t) => {
  for (const targetModules of [['q_proj', 'v_proj'], '.*\\.(q_proj|v_proj)']) {
    const peft = getPeftModel(await AutoModelForCausalLM.fromPretrained(GEMMA3, quiet), new LoraConfig({ r: 4, targetModules }));
    const dir = await mkdtemp(join(tmpdir(), 'lorakit-gemma3-'));
    await peft.savePretrained(dir);
    const saved = JSON.parse(await readFile(join(dir, 'adapter_config.json'), 'utf8')).target_modules;
    t.deepEqual(saved, [0, 1].flatMap((i) => ['q_proj', 'v_proj'].map((p) => `model.language_model.layers.${i}.self_attn.${p}`)));
    const reloaded = await PeftModel.fromPretrained(await AutoModelForCausalLM.fromPretrained(GEMMA3, quiet), dir);
    t.is(reloaded.loraLayers().length, 4);
  }
});

test('lora merge onto gemma3 keeps the checkpoint\'s keys and vision tensors, with the adapted logits', async (t) => {
  const { peft, dir } = await adaptedGemma3();
  const out = join(dir, 'merged');
  const result = await mergeCheckpoint({ model: GEMMA3, adapters: [{ dir: join(dir, 'adapter') }], out, ...quiet });
  t.is(result.mergedTensors, 14);
  const [input, merged] = await Promise.all([Checkpoint.open(GEMMA3), Checkpoint.open(out)]);
  t.deepEqual(merged.names().sort(), input.names().sort());
  const vision = input.names().filter((n) => VISION.test(n));
  t.is(vision.length, 34);
  for (const name of vision) t.true(Buffer.from(await merged.readBytes(name)).equals(Buffer.from(await input.readBytes(name))), name);
  t.false(Buffer.from(await merged.readBytes('language_model.model.layers.0.self_attn.q_proj.weight')).equals(Buffer.from(await input.readBytes('language_model.model.layers.0.self_attn.q_proj.weight'))));
  await Promise.all([input.close(), merged.close()]);
  const config = JSON.parse(await readFile(join(out, 'config.json'), 'utf8'));
  t.is(config.model_type, 'gemma3');
  t.deepEqual(config.vision_config, JSON.parse(await readFile(join(GEMMA3, 'config.json'), 'utf8')).vision_config);

  const inputIds = Tensor.fromArray([[3, 17, 42, 9, 100, 5, 125]], 'int32');
  const adapted = noGrad(() => peft.call({ inputIds }).logits);
  t.true(maxAbs(adapted, peft.withAdapterDisabled(() => noGrad(() => peft.call({ inputIds }).logits))) > 1e-3, 'the adapter changes the output');
  const reloaded = await AutoModelForCausalLM.fromPretrained(out, quiet);
  t.true(maxAbs(noGrad(() => reloaded.call({ inputIds }).logits), adapted) <= 1e-4);
});

test('an adapter on gemma3\'s vision tower (PEFT\'s all-linear there) is refused by loading and merging, saying why', async (t) => {
  const { dir } = await adaptedGemma3();
  const file = await SafetensorsFile.open(join(dir, 'adapter', 'adapter_model.safetensors'));
  const tensors = new Map<string, Tensor>();
  for (const name of file.names()) tensors.set(name, await file.read(name));
  await file.close();
  // PEFT's all-linear on Gemma3ForConditionalGeneration also wraps the vision tower's linears (here: hidden size 16)
  tensors.set('base_model.model.model.vision_tower.encoder.layers.0.self_attn.q_proj.lora_A.weight', Tensor.zeros([4, 16]));
  tensors.set('base_model.model.model.vision_tower.encoder.layers.0.self_attn.q_proj.lora_B.weight', Tensor.zeros([16, 4]));
  await saveSafetensors(join(dir, 'adapter', 'adapter_model.safetensors'), new Map([...tensors].map(([k, v]) => [k, tensorRecord(v, 'F32')])));
  const hint = /\(2 of them adapt the vision tower and multi-modal projector: lorakit loads the language model only, so an adapter on them is not supported/;
  const loading = await t.throwsAsync(PeftModel.fromPretrained(await AutoModelForCausalLM.fromPretrained(GEMMA3, quiet), join(dir, 'adapter')));
  t.is(loading?.name, 'AdapterKeyMismatch');
  t.regex(loading!.message, hint);
  const merging = await t.throwsAsync(mergeCheckpoint({ model: GEMMA3, adapters: [{ dir: join(dir, 'adapter') }], out: join(dir, 'merged'), ...quiet }));
  t.is(merging?.name, 'AdapterKeyMismatch');
  t.regex(merging!.message, hint);
});

test('QLoRA on gemma3 trains the language model in memory, and the 4-bit base is not saved', async (t) => {
  const model = await AutoModelForCausalLM.fromPretrained(GEMMA3, quiet);
  const quantized = await quantizeModel(model, { blockSize: 16 });
  t.true(quantized.includes('model.language_model.layers.0.self_attn.q_proj'));
  const peft = getPeftModel(model, new LoraConfig({ r: 4, loraAlpha: 8, targetModules: ['q_proj', 'v_proj'] }));
  const inputIds = Tensor.fromArray([[3, 17, 42, 9]], 'int32');
  const { loss } = peft.call({ inputIds, labels: inputIds });
  loss!.backward();
  t.true(peft.loraLayers().every(([, layer]) => layer.lora_B.get('default')!.weight.grad !== null));
  const error = await t.throwsAsync(saveModel(model, join(await mkdtemp(join(tmpdir(), 'lorakit-gemma3-4bit-')), 'out')));
  t.regex(error!.message, /a 4-bit gemma3 model is not saved/);
});
