import test from 'ava';
import { mkdtemp, readdir, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Tensor, noGrad } from '@lorakit/core';
import { AutoModelForCausalLM } from './auto.ts';
import { saveModel } from './save.ts';
import { FIXTURES } from './testing.ts';

test('a saved model reloads to the same logits, sharded and with tied weights left out', async (t) => {
  const model = await AutoModelForCausalLM.fromPretrained(`${FIXTURES}/llama-bf16-tied`);
  const dir = await mkdtemp(join(tmpdir(), 'lorakit-save-'));
  await saveModel(model, dir, { dtype: 'BF16', maxShardSize: 20_000 });
  const files = await readdir(dir);
  t.true(files.includes('model.safetensors.index.json'));
  t.true(files.includes('model-00001-of-00003.safetensors'), files.join(', '));
  const index = JSON.parse(await readFile(join(dir, 'model.safetensors.index.json'), 'utf8'));
  t.false('lm_head.weight' in index.weight_map, 'the tied head is not stored');
  t.true('model.embed_tokens.weight' in index.weight_map);
  const reloaded = await AutoModelForCausalLM.fromPretrained(dir);
  const inputIds = Tensor.fromArray([[5, 9, 20, 7]], 'int32');
  const a = noGrad(() => model.call({ inputIds }).logits);
  const b = noGrad(() => reloaded.call({ inputIds }).logits);
  t.deepEqual(b.toArray(), a.toArray()); // the weights were bf16 to begin with: nothing was rounded
});
