/**
 * The streaming merge refuses what loading refuses, with the same error (code
 * and message), before anything is written: broken base checkpoints against
 * AutoModelForCausalLM.fromPretrained, broken adapters against
 * PeftModel.fromPretrained (docs/reliability.md sections C, D and E). Every
 * case starts from the embedded model and PEFT's q/v adapter, breaks one
 * thing in a copy, and checks that nothing appears at or beside --out and
 * that the inputs are byte for byte as they were.
 */
import test from 'ava';
import { createHash } from 'node:crypto';
import { cp, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Tensor } from '@lorakit/core';
import { SafetensorsFile, saveSafetensors, type TensorRecord } from '@lorakit/core/io';
import { AutoModelForCausalLM } from '@lorakit/models';
import { mergeCheckpoint } from './merge-checkpoint.ts';
import { PeftModel } from './peft-model.ts';
import { ADAPTER_FIXTURES, PEFT_FIXTURES, TINY_CODE_LLAMA, copyAdapter } from './testing.ts';

const ADAPTER = `${PEFT_FIXTURES}/codellama_qv_r8/adapter`;
const tmp = () => mkdtemp(join(tmpdir(), 'lorakit-refusal-'));
const quiet = { onWarning: () => {} };

/** Every file of a folder, by name, with the SHA-256 of its bytes. */
async function snapshot(dir: string): Promise<Map<string, string>> {
  const names = (await readdir(dir)).sort();
  return new Map(await Promise.all(names.map(async (n) => [n, createHash('sha256').update(await readFile(join(dir, n))).digest('hex')] as const)));
}

/** The stored tensors of a safetensors file, raw, to edit and write back. */
async function records(file: string): Promise<Map<string, TensorRecord>> {
  const reader = await SafetensorsFile.open(file);
  const result = new Map<string, TensorRecord>();
  for (const name of reader.names()) {
    const { dtype, shape } = reader.entry(name);
    result.set(name, { dtype, shape, bytes: (await reader.readBytes(name)).slice() });
  }
  await reader.close();
  return result;
}

/** A copy of the embedded model with its weights edited. */
async function brokenModel(edit: (tensors: Map<string, TensorRecord>, dir: string) => Promise<void> | void): Promise<string> {
  const dir = await tmp();
  await cp(TINY_CODE_LLAMA, dir, { recursive: true });
  const tensors = await records(join(dir, 'model.safetensors'));
  await edit(tensors, dir);
  return dir;
}

/** Merge and load fail alike; nothing is written at or beside --out; the inputs are unchanged. */
async function sameRefusal(t: import('ava').ExecutionContext, model: string, adapter: string, load: () => Promise<unknown>, code: string): Promise<void> {
  const before = [await snapshot(model), await snapshot(adapter)];
  const loaded = await t.throwsAsync(load());
  const parent = await tmp();
  const merged = await t.throwsAsync(mergeCheckpoint({ model, adapters: [{ dir: adapter }], out: join(parent, 'merged'), ...quiet }));
  t.is(loaded?.name, code, loaded?.message);
  t.is(merged?.name, loaded?.name);
  t.is(merged?.message, loaded?.message);
  t.deepEqual(await readdir(parent), [], 'nothing at or beside --out');
  t.deepEqual([await snapshot(model), await snapshot(adapter)], before, 'inputs unchanged');
}

function refusesModel(title: string, edit: Parameters<typeof brokenModel>[0], code: string, detail: RegExp): void {
  test(`merge and fromPretrained refuse ${title} alike: ${code}`, async (t) => {
    const model = await brokenModel(edit);
    await sameRefusal(t, model, ADAPTER, () => AutoModelForCausalLM.fromPretrained(model, quiet), code);
    const error = await t.throwsAsync(AutoModelForCausalLM.fromPretrained(model, quiet));
    t.regex(error!.message, detail);
  });
}

const save = (dir: string, tensors: Map<string, TensorRecord>) => saveSafetensors(join(dir, 'model.safetensors'), tensors);

refusesModel('a checkpoint without model.norm.weight', (t, dir) => { t.delete('model.norm.weight'); return save(dir, t); }, 'CheckpointMismatch', /missing \(1\):\n\s+model\.norm\.weight/);
refusesModel('a checkpoint with a tensor the config does not give', (t, dir) => { t.set('model.layers.6.mlp.up_proj.weight', t.get('model.layers.5.mlp.up_proj.weight')!); return save(dir, t); }, 'CheckpointMismatch', /unexpected \(1\):\n\s+"model\.layers\.6\.mlp\.up_proj\.weight"/);
refusesModel('a mis-shaped weight', (t, dir) => {
  const { dtype, bytes } = t.get('model.layers.2.self_attn.v_proj.weight')!;
  t.set('model.layers.2.self_attn.v_proj.weight', { dtype, shape: [256, 128], bytes });
  return save(dir, t);
}, 'CheckpointMismatch', /model\.layers\.2\.self_attn\.v_proj\.weight: checkpoint \[256,128\], config\.json gives \[128,256\]/);
refusesModel('a weight stored as integers', (t, dir) => {
  const { shape, bytes } = t.get('model.layers.0.input_layernorm.weight')!;
  t.set('model.layers.0.input_layernorm.weight', { dtype: 'I16', shape, bytes });
  return save(dir, t);
}, 'UnsupportedDtype', /"model\.layers\.0\.input_layernorm\.weight" is I16, not a float tensor/);
refusesModel('an index whose weight_map leaves half the tensors out', async (t, dir) => {
  const names = [...t.keys()];
  const half = (from: number, to: number) => new Map(names.slice(from, to).map((n) => [n, t.get(n)!]));
  await rm(join(dir, 'model.safetensors'));
  await saveSafetensors(join(dir, 'model-00001-of-00002.safetensors'), half(0, 28));
  await saveSafetensors(join(dir, 'model-00002-of-00002.safetensors'), half(28, names.length));
  const weightMap = Object.fromEntries(names.slice(0, 28).map((n) => [n, 'model-00001-of-00002.safetensors']));
  await writeFile(join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: {}, weight_map: weightMap }));
}, 'CheckpointMismatch', /missing \(28\)/);

function refusesAdapter(title: string, make: () => Promise<string>, code: string, detail: RegExp): void {
  test(`merge and PeftModel.fromPretrained refuse ${title} alike: ${code}`, async (t) => {
    const adapter = await make();
    const base = await AutoModelForCausalLM.fromPretrained(TINY_CODE_LLAMA);
    await sameRefusal(t, TINY_CODE_LLAMA, adapter, () => PeftModel.fromPretrained(base, adapter, quiet), code);
    const error = await t.throwsAsync(PeftModel.fromPretrained(base, adapter, quiet));
    t.regex(error!.message, detail);
  });
}

const Q2 = 'base_model.model.model.layers.2.self_attn.q_proj';
refusesAdapter('an r that disagrees with the tensors', () => copyAdapter({ config: (c) => void (c.r = 4) }), 'AdapterKeyMismatch', /lora_A\.weight: file \[8,256\], model \[4,256\]/);
refusesAdapter('a rank_pattern that disagrees with the tensors', () => copyAdapter({ config: (c) => void (c.rank_pattern = { q_proj: 4 }) }), 'AdapterKeyMismatch', /q_proj\.lora_B\.weight: file \[256,8\], model \[256,4\]/);
refusesAdapter('target_modules that leave tensors out', () => copyAdapter({ config: (c) => void (c.target_modules = ['q_proj']) }), 'AdapterKeyMismatch', /does not have \(12\):\n\s+"base_model\.model\.model\.layers\.0\.self_attn\.v_proj\.lora_A\.weight"/);
refusesAdapter('layers_to_transform that leave tensors out', () => copyAdapter({ config: (c) => void (c.layers_to_transform = [0]) }), 'AdapterKeyMismatch', /does not have \(20\)/);
refusesAdapter('exclude_modules that leave tensors out', () => copyAdapter({ config: (c) => void (c.exclude_modules = ['v_proj']) }), 'AdapterKeyMismatch', /does not have \(12\)/);
refusesAdapter('target_modules that match nothing', () => copyAdapter({ config: (c) => void (c.target_modules = ['query_key_value']) }), 'NoMatchingModules', /matched no module of the llama model/);
refusesAdapter('lora_A without its lora_B', () => copyAdapter({ tensors: (t) => void t.delete(`${Q2}.lora_B.weight`) }), 'AdapterKeyMismatch', /lacks \(1\):\n\s+"base_model\.model\.model\.layers\.2\.self_attn\.q_proj\.lora_B\.weight"/);
refusesAdapter('use_dora without magnitude vectors', () => copyAdapter({ config: (c) => void (c.use_dora = true) }), 'AdapterKeyMismatch', /lacks \(12\):\n\s+"base_model\.model\.model\.layers\.0\.self_attn\.q_proj\.lora_magnitude_vector"/);
refusesAdapter('a key that is not a LoRA key', () => copyAdapter({ tensors: (t) => void t.set(`${Q2}.lora_C.weight`, Tensor.zeros([8, 256])) }), 'AdapterKeyMismatch', /does not have \(1\):\n\s+"base_model\.model\.model\.layers\.2\.self_attn\.q_proj\.lora_C\.weight"/);
refusesAdapter('a NaN in lora_B', () => copyAdapter({ tensors: (t) => void (t.get(`${Q2}.lora_B.weight`)!.values[5] = Number.NaN) }), 'NonFiniteAdapter', /q_proj\.lora_B\.weight" holds NaN or Inf/);
refusesAdapter('an Infinity in lora_A', () => copyAdapter({ tensors: (t) => void (t.get(`${Q2}.lora_A.weight`)!.values[0] = Number.POSITIVE_INFINITY) }), 'NonFiniteAdapter', /q_proj\.lora_A\.weight" holds NaN or Inf/);
refusesAdapter('an adapter made for another model', async () => `${ADAPTER_FIXTURES}/regex-targets/adapter`, 'AdapterKeyMismatch', /shape mismatches \(8\):\n\s+base_model\.model\.model\.layers\.0\.self_attn\.k_proj\.lora_A\.weight: file \[4,32\], model \[4,256\]/);

test('a second adapter that does not fit is refused before anything is written, naming its file', async (t) => {
  const broken = await copyAdapter({ config: (c) => void (c.r = 4) });
  const parent = await tmp();
  const error = await t.throwsAsync(mergeCheckpoint({ model: TINY_CODE_LLAMA, adapters: [{ dir: ADAPTER }, { dir: broken }], out: join(parent, 'merged'), ...quiet }));
  t.is(error?.name, 'AdapterKeyMismatch');
  t.true(error!.message.startsWith(join(broken, 'adapter_model.safetensors')), error!.message);
  t.deepEqual(await readdir(parent), []);
});
