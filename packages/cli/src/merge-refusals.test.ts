/**
 * lora merge through the built binary refuses what loading refuses (docs/reliability.md section E): exit 1,
 * a short message naming the file, no stack trace, nothing at or beside --out, inputs unchanged.
 */
import test from 'ava';
import { cp, readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { SafetensorsFile, saveSafetensors, type TensorRecord } from '@lorakit/core/io';
import { MODEL, PEFT, REPO, fails, lora, scratch } from './testing.ts';

const ADAPTER = `${PEFT}/codellama_qv_r8/adapter`;

test('merge with an adapter made for another model is one short AdapterKeyMismatch, not a stack trace from the stream', async (t) => {
  const parent = await scratch();
  await fails(t, lora('merge', MODEL, '--adapter', `${REPO}packages/adapters/fixtures/regex-targets/adapter`, '--out', join(parent, 'merged')), /regex-targets\/adapter\/adapter_model\.safetensors: does not fit this model/);
  t.deepEqual(await readdir(parent), []);
});

test('merge into a checkpoint without model.norm.weight exits 1 naming the tensor, and writes nothing', async (t) => {
  const [model, parent] = [join(await scratch(), 'model'), await scratch()];
  await cp(MODEL, model, { recursive: true });
  const file = await SafetensorsFile.open(join(MODEL, 'model.safetensors'));
  const tensors = new Map<string, TensorRecord>();
  for (const name of file.names().filter((n) => n !== 'model.norm.weight')) tensors.set(name, { ...file.entry(name), bytes: (await file.readBytes(name)).slice() });
  await file.close();
  await saveSafetensors(join(model, 'model.safetensors'), tensors);
  const before = await readFile(join(model, 'model.safetensors'));
  await fails(t, lora('merge', model, '--adapter', ADAPTER, '--out', join(parent, 'merged')), /model: does not fit the llama model that config\.json describes:\n {2}missing \(1\):\n {4}model\.norm\.weight/);
  t.deepEqual(await readdir(parent), []);
  t.true(before.equals(await readFile(join(model, 'model.safetensors'))));
});

test('merge with an adapter whose r disagrees with its tensors exits 1 with both shapes', async (t) => {
  const [adapter, parent] = [join(await scratch(), 'adapter'), await scratch()];
  await cp(ADAPTER, adapter, { recursive: true });
  const config = JSON.parse(await readFile(join(adapter, 'adapter_config.json'), 'utf8'));
  await writeFile(join(adapter, 'adapter_config.json'), JSON.stringify({ ...config, r: 4 }));
  await fails(t, lora('merge', MODEL, '--adapter', adapter, '--out', join(parent, 'merged')), /adapter_model\.safetensors: does not fit this model:\n {2}shape mismatches \(24\):\n {4}base_model\.model\.model\.layers\.0\.self_attn\.q_proj\.lora_A\.weight: file \[8,256\], model \[4,256\]/);
  t.deepEqual(await readdir(parent), []);
});
