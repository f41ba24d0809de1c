/**
 * The Llama-family options each model_type implies, read from config.json with
 * transformers' defaults (its configuration_*.py), and what the layers get.
 */
import test from 'ava';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../config.ts';
import { layerConfig, type LlamaFamilyConfig } from './config.ts';
import { FIXTURES } from '../testing.ts';

/** The fixture's config.json with `edit` applied and `drop` removed, read back. */
async function configOf(fixture: string, edit: Record<string, unknown>, drop: string[] = []): Promise<LlamaFamilyConfig> {
  const raw = JSON.parse(await readFile(join(FIXTURES, fixture, 'config.json'), 'utf8'));
  for (const field of drop) delete raw[field];
  const dir = await mkdtemp(join(tmpdir(), 'lorakit-family-'));
  await writeFile(join(dir, 'config.json'), JSON.stringify({ ...raw, ...edit }));
  return (await loadConfig(dir)) as LlamaFamilyConfig;
}

test('qwen3 without head_dim takes transformers\' 128, not hidden_size / heads', async (t) => {
  const config = await configOf('qwen3', {}, ['head_dim']);
  t.is(config.head_dim, 128);
});

test('qwen3 layers have q/k norms and no biases on the MLP whatever mlp_bias says', async (t) => {
  t.like(layerConfig(await configOf('qwen3', { mlp_bias: true })), { qk_norm: true, mlp_bias: false, qkv_bias: false, o_bias: false });
});

test('qwen3 with attention_bias has biases on q, k, v and o', async (t) => {
  t.like(layerConfig(await configOf('qwen3', { attention_bias: true })), { qkv_bias: true, o_bias: true });
});

test('llama layers have no q/k norms', async (t) => {
  t.like(layerConfig(await configOf('llama', {})), { qk_norm: false });
});
