/** weightLayout: the config's tensors without building the model, equal to the model's own, and checkCheckpoint against it (docs/reliability.md C4). */
import test from 'ava';
import { cp, mkdtemp, readFile, readdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { init } from '@lorakit/core';
import { Checkpoint, SafetensorsFile, saveSafetensors, type TensorRecord } from '@lorakit/core/io';
import { loadConfig, type ModelConfig } from './config.ts';
import { modelForConfig } from './auto.ts';
import { checkCheckpoint } from './weights.ts';
import { checkLayoutMatches, weightLayout } from './weight-layout.ts';
import { FIXTURES, TINY_CODE_LLAMA } from './testing.ts';

const folders = [TINY_CODE_LLAMA, ...(await readdir(FIXTURES)).filter((n) => !n.includes('.') && !n.startsWith('bnb-')).map((n) => join(FIXTURES, n))];

for (const dir of folders) {
  test(`the layout of ${dir.slice(dir.lastIndexOf('/') + 1)} is the built model's modules and tensors`, async (t) => {
    const config = await loadConfig(dir);
    t.notThrows(() => checkLayoutMatches(weightLayout(config), init.withoutInit(() => modelForConfig(config))));
  });
}

const variants: Array<[string, Partial<Record<string, unknown>>]> = [
  ['llama with attention and mlp biases, untied', { attention_bias: true, mlp_bias: true, tie_word_embeddings: false }],
  ['qwen2 with tied embeddings', { model_type: 'qwen2', tie_word_embeddings: true }],
  ['gpt2 with relu and untied head', { model_type: 'gpt2', n_embd: 16, n_head: 2, n_layer: 2, n_positions: 8, vocab_size: 32, activation_function: 'relu', tie_word_embeddings: false }],
];
for (const [title, edit] of variants) {
  test(`the layout of ${title} is the built model's`, async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'lorakit-layout-'));
    const base = JSON.parse(await readFile(join(FIXTURES, edit.model_type === 'gpt2' ? 'gpt2' : 'llama', 'config.json'), 'utf8'));
    await writeFile(join(dir, 'config.json'), JSON.stringify({ ...base, ...edit }));
    const config = await loadConfig(dir);
    t.notThrows(() => checkLayoutMatches(weightLayout(config), init.withoutInit(() => modelForConfig(config))));
  });
}

test('a layout that disagrees with the model is an internal error', async (t) => {
  const config = await loadConfig(TINY_CODE_LLAMA);
  const other = { ...config, mlp_bias: true } as ModelConfig;
  t.throws(() => checkLayoutMatches(weightLayout(other), init.withoutInit(() => modelForConfig(config))), { message: /internal error: weightLayout disagrees/ });
});

test('a tensor stored as integers where the config gives a float weight is UnsupportedDtype', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'lorakit-layout-'));
  await cp(TINY_CODE_LLAMA, dir, { recursive: true });
  const file = await SafetensorsFile.open(join(TINY_CODE_LLAMA, 'model.safetensors'));
  const records = new Map<string, TensorRecord>();
  for (const name of file.names()) {
    const { dtype, shape } = file.entry(name);
    records.set(name, name === 'model.norm.weight' ? { dtype: 'I32', shape, bytes: new Uint8Array(shape[0] * 4) } : { dtype, shape, bytes: (await file.readBytes(name)).slice() });
  }
  await file.close();
  await saveSafetensors(join(dir, 'model.safetensors'), records);
  const [checkpoint, layout] = [await Checkpoint.open(dir), weightLayout(await loadConfig(dir))];
  const error = t.throws(() => checkCheckpoint(checkpoint, layout));
  await checkpoint.close();
  t.is(error?.name, 'UnsupportedDtype');
  t.regex(error!.message, /"model\.norm\.weight" is I32, not a float tensor/);
});
