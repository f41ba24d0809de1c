/** adapter_config.json and adapter_model.safetensors: what is written, and every way a file can fail to fit (docs/reliability.md sections C and D). */
import test from 'ava';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Tensor } from '@lorakit/core';
import { SafetensorsFile } from '@lorakit/core/io';
import { AutoModelForCausalLM } from '@lorakit/models';
import { LoraConfig } from './config.ts';
import { PeftModel, getPeftModel } from './peft-model.ts';
import { LoraLinear } from './lora-linear.ts';
import { MODEL_FIXTURES, PEFT_FIXTURES, TINY_CODE_LLAMA, copyAdapter } from './testing.ts';

const ADAPTER = `${PEFT_FIXTURES}/codellama_qv_r8/adapter`;
const tmp = () => mkdtemp(join(tmpdir(), 'lorakit-adapter-'));
const model = () => AutoModelForCausalLM.fromPretrained(TINY_CODE_LLAMA);

test('the written config uses PEFT names, expands all-linear, and adds newer fields only when set', async (t) => {
  const dir = await tmp();
  await getPeftModel(await model(), new LoraConfig({ r: 4, loraAlpha: 8, targetModules: 'all-linear' })).savePretrained(dir);
  const json = JSON.parse(await readFile(join(dir, 'adapter_config.json'), 'utf8'));
  t.is(json.peft_type, 'LORA');
  t.true(json.inference_mode);
  t.is(json.target_modules.length, 6 * 7);
  t.true(json.target_modules.includes('model.layers.5.mlp.down_proj'));
  t.false('use_dora' in json || 'use_rslora' in json || 'exclude_modules' in json, 'defaults of newer fields are left out for older PEFT');
  const withDora = await tmp();
  await getPeftModel(await model(), new LoraConfig({ targetModules: ['q_proj'], useDora: true, useRslora: true })).savePretrained(withDora);
  const doraJson = JSON.parse(await readFile(join(withDora, 'adapter_config.json'), 'utf8'));
  t.true(doraJson.use_dora && doraJson.use_rslora);
  const file = await SafetensorsFile.open(join(withDora, 'adapter_model.safetensors'));
  t.deepEqual(Object.fromEntries(file.metadata!), { format: 'pt' });
  t.true(file.names().includes('base_model.model.model.layers.0.self_attn.q_proj.lora_magnitude_vector'));
  await file.close();
});

test('a second adapter is saved in a sub-folder named after it, as PEFT does', async (t) => {
  const peft = getPeftModel(await model(), new LoraConfig({ targetModules: ['q_proj'] }));
  peft.addAdapter('style', new LoraConfig({ targetModules: ['v_proj'] }));
  const dir = await tmp();
  await peft.savePretrained(dir);
  const json = JSON.parse(await readFile(join(dir, 'style', 'adapter_config.json'), 'utf8'));
  t.deepEqual(json.target_modules, ['v_proj']);
});

function refuses(title: string, make: () => Promise<string>, code: string, detail: RegExp) {
  test(`${title}: ${code}`, async (t) => {
    const m = await model();
    const dir = await make();
    const error = await t.throwsAsync(PeftModel.fromPretrained(m, dir, { onWarning: () => {} }));
    t.is(error?.name, code, error?.message);
    t.regex(error!.message, detail);
    t.false(m.modules().some((x) => x instanceof LoraLinear), 'the model is left as it was');
  });
}

refuses('a config without peft_type', () => copyAdapter({ config: (c) => void delete c.peft_type }), 'InvalidAdapterConfig', /no "peft_type"/);
refuses('another PEFT method', () => copyAdapter({ config: (c) => void (c.peft_type = 'PREFIX_TUNING') }), 'UnsupportedAdapterFeature', /"PREFIX_TUNING" is not supported/);
refuses('a rank of zero', () => copyAdapter({ config: (c) => void (c.r = 0) }), 'InvalidAdapterConfig', /r: must be a positive integer/);
refuses('a missing lora_alpha', () => copyAdapter({ config: (c) => void delete c.lora_alpha }), 'InvalidAdapterConfig', /lora_alpha must be a number/);
refuses('lora_bias', () => copyAdapter({ config: (c) => void (c.lora_bias = true) }), 'UnsupportedAdapterFeature', /lora_bias = "true"/);
refuses('a PiSSA initialisation that changed the base', () => copyAdapter({ config: (c) => void (c.init_lora_weights = 'pissa') }), 'UnsupportedAdapterFeature', /init_lora_weights/);
refuses('keys without the base_model.model. prefix', () => copyAdapter({ tensors: (t) => { for (const [k, v] of [...t]) { t.delete(k); t.set(k.replace('base_model.model.', ''), v); } } }), 'AdapterKeyMismatch', /none of its 24 tensors fit this model/);
refuses('lora_A without its lora_B', () => copyAdapter({ tensors: (t) => void t.delete('base_model.model.model.layers.2.self_attn.q_proj.lora_B.weight') }), 'AdapterKeyMismatch', /lacks \(1\):\n\s+"base_model\.model\.model\.layers\.2\.self_attn\.q_proj\.lora_B\.weight"/);
refuses('a tensor for a module the model lacks', () => copyAdapter({ tensors: (t) => void t.set('base_model.model.model.layers.9.self_attn.q_proj.lora_A.weight', Tensor.zeros([8, 256])) }), 'AdapterKeyMismatch', /does not have \(1\)/);
refuses('a rank that disagrees with the config', () => copyAdapter({ config: (c) => void (c.r = 4) }), 'AdapterKeyMismatch', /lora_A\.weight: file \[8,256\], model \[4,256\]/);
refuses('NaN in an adapter weight', () => copyAdapter({ tensors: (t) => void (t.get('base_model.model.model.layers.0.self_attn.v_proj.lora_B.weight')!.values[3] = Number.NaN) }), 'NonFiniteAdapter', /v_proj\.lora_B\.weight" holds NaN or Inf/);
refuses('an empty adapter', () => copyAdapter({ tensors: (t) => t.clear() }), 'EmptyAdapter', /holds no tensors/);
refuses('targets that match nothing', () => copyAdapter({ config: (c) => void (c.target_modules = ['query_key_value']) }), 'NoMatchingModules', /its linear layers are/);
refuses('a rank pattern that matches no target', () => copyAdapter({ config: (c) => void (c.rank_pattern = { gate_proj: 2 }) }), 'Error', /rankPattern: key "gate_proj" matches none/);

test('an adapter for another model is refused with the keys that do not fit', async (t) => {
  const other = await AutoModelForCausalLM.fromPretrained(`${MODEL_FIXTURES}/llama-rope-linear`);
  const error = await t.throwsAsync(PeftModel.fromPretrained(other, ADAPTER));
  t.is(error?.name, 'AdapterKeyMismatch');
  t.regex(error!.message, /shape mismatches/);
});

test('keys with the adapter name of older PEFT releases load', async (t) => {
  const dir = await copyAdapter({ tensors: (t) => { for (const [k, v] of [...t]) { t.delete(k); t.set(k.replace('.weight', '.default.weight'), v); } } });
  const peft = await PeftModel.fromPretrained(await model(), dir);
  t.is(peft.loraLayers().length, 12);
});

test('an unknown config field and an untrained adapter are warnings, not errors', async (t) => {
  const dir = await copyAdapter({ config: (c) => void (c.some_future_field = 1), tensors: (t) => { for (const [k, v] of t) if (k.includes('lora_B')) v.values.fill(0); } });
  const warnings: string[] = [];
  await PeftModel.fromPretrained(await model(), dir, { onWarning: (w) => warnings.push(w) });
  t.true(warnings.some((w) => /ignoring unknown fields "some_future_field"/.test(w)));
  t.true(warnings.some((w) => /every lora_B is zero/.test(w)));
});

test('loading never modifies the adapter files', async (t) => {
  const before = await Promise.all(['adapter_config.json', 'adapter_model.safetensors'].map((f) => readFile(join(ADAPTER, f))));
  await PeftModel.fromPretrained(await model(), ADAPTER);
  const after = await Promise.all(['adapter_config.json', 'adapter_model.safetensors'].map((f) => readFile(join(ADAPTER, f))));
  t.deepEqual(after, before);
});
