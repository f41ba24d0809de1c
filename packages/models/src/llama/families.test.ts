/**
 * The Llama-family options each model_type implies, read from config.json with
 * transformers' defaults (its configuration_*.py), and what the layers get.
 */
import test from 'ava';
import { cp, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../config.ts';
import { layerConfig, outerScalars, type LlamaFamilyConfig } from './config.ts';
import { ropeParameters } from '../rope.ts';
import { Tensor, noGrad } from '@lorakit/core';
import { generate } from '../generation.ts';
import { SafetensorsFile } from '@lorakit/core/io';
import { AutoModelForCausalLM } from '../auto.ts';
import { FIXTURES, maxMaskedDiff } from '../testing.ts';

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
  t.like(layerConfig(await configOf('qwen3', { mlp_bias: true }), 0), { qkNorm: 'head', mlp_bias: false, qkv_bias: false, o_bias: false, attention_scale: 1 / Math.sqrt(16), residual_multiplier: 1 });
});

test('qwen3 with attention_bias has biases on q, k, v and o', async (t) => {
  t.like(layerConfig(await configOf('qwen3', { attention_bias: true }), 0), { qkv_bias: true, o_bias: true });
});

test('llama layers have no q/k norms', async (t) => {
  t.like(layerConfig(await configOf('llama', {}), 1), { qkNorm: 'none', rope: 'default' });
});

test('smollm3 without no_rope_layers leaves out rotary positions in every no_rope_layer_interval-th layer, as transformers derives it', async (t) => {
  const config = await configOf('smollm3', { num_hidden_layers: 8 }, ['no_rope_layers', 'no_rope_layer_interval', 'layer_types']);
  t.deepEqual(config.no_rope_layers, [1, 1, 1, 0, 1, 1, 1, 0]);
  const every3 = await configOf('smollm3', { num_hidden_layers: 6, no_rope_layer_interval: 3 }, ['no_rope_layers', 'layer_types']);
  t.deepEqual(Array.from({ length: 6 }, (_, i) => layerConfig(every3, i).rope), ['default', 'default', null, 'default', 'default', null]);
});

test('smollm3 reads no_rope_layers as written: 1 = rotary positions, 0 = NoPE', async (t) => {
  const config = await configOf('smollm3', { no_rope_layers: [0, 1] });
  t.deepEqual([layerConfig(config, 0).rope, layerConfig(config, 1).rope], [null, 'default']);
});

test('smollm3 takes transformers\' rope base 2,000,000 and tied embeddings by default', async (t) => {
  const config = await configOf('smollm3', {}, ['rope_parameters', 'tie_word_embeddings']);
  t.is(ropeParameters(config).rope_theta, 2_000_000);
  t.true(config.tie_word_embeddings);
});

test('granite reads its four scalars: attention_multiplier replaces 1/√head_dim, logits are divided by logits_scaling', async (t) => {
  const config = await configOf('granite', {});
  t.like(layerConfig(config, 0), { attention_scale: 0.9, residual_multiplier: 0.6 });
  t.deepEqual(outerScalars(config), { embedding: 4, logits: 2.5, logitsSoftcap: null });
});

test('granite without its scalars takes transformers\' 1.0 for each, so its attention scale is 1, not 1/√head_dim', async (t) => {
  const config = await configOf('granite', {}, ['embedding_multiplier', 'residual_multiplier', 'attention_multiplier', 'logits_scaling']);
  t.like(layerConfig(config, 0), { attention_scale: 1, residual_multiplier: 1 });
  t.deepEqual(outerScalars(config), { embedding: 1, logits: 1, logitsSoftcap: null });
});

test('llama ignores granite\'s scalars in its config, as transformers does', async (t) => {
  const config = await configOf('llama', { attention_multiplier: 0.5, residual_multiplier: 2, embedding_multiplier: 3, logits_scaling: 4 });
  t.like(layerConfig(config, 0), { attention_scale: 1 / Math.sqrt(8), residual_multiplier: 1 });
  t.deepEqual(outerScalars(config), { embedding: 1, logits: 1, logitsSoftcap: null });
});

for (const fixture of ['mistral', 'qwen2', 'qwen3']) {
  test(`a ${fixture} config.json with mlp_bias true loads transformers' checkpoint with its logits: those MLPs have no bias`, async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'lorakit-family-'));
    await cp(join(FIXTURES, fixture), dir, { recursive: true });
    const raw = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8'));
    await writeFile(join(dir, 'config.json'), JSON.stringify({ ...raw, mlp_bias: true }));
    const model = await AutoModelForCausalLM.fromPretrained(dir);
    const reference = await SafetensorsFile.open(join(dir, 'reference.safetensors'));
    const [inputIds, attentionMask, logits] = await Promise.all(['input_ids', 'attention_mask', 'logits'].map((n) => reference.read(n)));
    await reference.close();
    const out = noGrad(() => model.call({ inputIds, attentionMask }));
    t.true(maxMaskedDiff(out.logits, logits, attentionMask) <= 1e-4);
  });
}

/** The fixture with config.json edited loads transformers' checkpoint and gives its logits. */
async function logitsMatch(fixture: string, edit: Record<string, unknown>, drop: string[] = []): Promise<number> {
  const dir = await mkdtemp(join(tmpdir(), 'lorakit-family-'));
  await cp(join(FIXTURES, fixture), dir, { recursive: true });
  const raw = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8'));
  for (const field of drop) delete raw[field];
  await writeFile(join(dir, 'config.json'), JSON.stringify({ ...raw, ...edit }));
  const model = await AutoModelForCausalLM.fromPretrained(dir);
  const reference = await SafetensorsFile.open(join(dir, 'reference.safetensors'));
  const [inputIds, attentionMask, logits] = await Promise.all(['input_ids', 'attention_mask', 'logits'].map((n) => reference.read(n)));
  await reference.close();
  return maxMaskedDiff(noGrad(() => model.call({ inputIds, attentionMask })).logits, logits, attentionMask);
}

test('gemma2 without layer_types alternates sliding and full layers, as transformers derives them', async (t) => {
  const config = await configOf('gemma2', { num_hidden_layers: 4 }, ['layer_types']);
  t.deepEqual(config.layer_types, ['sliding_attention', 'full_attention', 'sliding_attention', 'full_attention']);
  t.deepEqual([0, 1].map((i) => layerConfig(config, i).sliding_window), [4, null]);
});

test('gemma3_text without layer_types makes every sliding_window_pattern-th layer full (6 by default)', async (t) => {
  const byDefault = await configOf('gemma3_text', { num_hidden_layers: 6 }, ['layer_types', 'sliding_window_pattern']);
  t.deepEqual(byDefault.layer_types!.map((l) => l[0]), ['s', 's', 's', 's', 's', 'f']);
  const every3 = await configOf('gemma3_text', { num_hidden_layers: 6, sliding_window_pattern: 3 }, ['layer_types']);
  t.deepEqual(every3.layer_types!.map((l) => l[0]), ['s', 's', 'f', 's', 's', 'f']);
});

test('gemma2 and gemma3 scale attention by query_pre_attn_scalar^-½; gemma by 1/√head_dim; the gemmas scale embeddings by √hidden_size in float32', async (t) => {
  t.is(layerConfig(await configOf('gemma2', {}), 0).attention_scale, 24 ** -0.5);
  t.is(layerConfig(await configOf('gemma3_text', {}), 0).attention_scale, 24 ** -0.5);
  t.is(layerConfig(await configOf('gemma', {}), 0).attention_scale, 1 / 4);
  t.is(outerScalars(await configOf('gemma', {})).embedding, Math.fround(Math.sqrt(32)));
  t.like(outerScalars(await configOf('gemma2', {})), { logitsSoftcap: 3 });
});

test('gemma3_text read from the older rope_theta / rope_local_base_freq / rope_scaling form gives the same logits', async (t) => {
  const older = { rope_theta: 1e6, rope_local_base_freq: 500, rope_scaling: { rope_type: 'linear', factor: 2 } };
  t.true((await logitsMatch('gemma3_text', older, ['rope_parameters'])) <= 1e-4);
  t.true((await logitsMatch('gemma3_text', { ...older, rope_local_base_freq: 10_000 }, ['rope_parameters'])) > 1e-3); // the sliding layer's base matters
});

test('phi3 with the older rope_scaling of type "su" reads it as longrope', async (t) => {
  const raw = JSON.parse(await readFile(join(FIXTURES, 'phi3', 'config.json'), 'utf8'));
  const { rope_type: _, ...rest } = raw.rope_parameters;
  t.true((await logitsMatch('phi3', { rope_scaling: { ...rest, type: 'su' } }, ['rope_parameters'])) <= 1e-4);
});

test('phi3 generation past original_max_position_embeddings runs the whole sequence again, so every step equals a full forward, op by op and on the decoder graph', async (t) => {
  const model = await AutoModelForCausalLM.fromPretrained(join(FIXTURES, 'phi3'));
  const steps: Float32Array[] = [];
  const call = model.call.bind(model);
  model.call = ((inputs: Parameters<typeof call>[0]) => {
    const out = call(inputs);
    steps.push(out.logits.values.slice(-128) as Float32Array);
    return out;
  }) as typeof model.call;
  const [tokens] = generate(model, [[98, 17, 127, 121, 16]], { maxNewTokens: 20, eosTokenId: null, decoder: 'eager' });
  model.call = call;
  steps.forEach((logits, step) => {
    const prefix = tokens.slice(0, 5 + step);
    const full = noGrad(() => model.call({ inputIds: Tensor.fromArray([prefix], 'int32') })).logits.values.slice(-128);
    t.true(logits.every((v, i) => Math.abs(v - full[i]) < 1e-5), `step ${step} (sequence of ${prefix.length})`);
  });
  t.deepEqual(generate(model, [[98, 17, 127, 121, 16]], { maxNewTokens: 20, eosTokenId: null }), [tokens], 'the decoder graph restarts at the switch too');
});

test('qwen3 with use_sliding_window slides from max_window_layers on, as transformers derives layer_types', async (t) => {
  const config = await configOf('qwen3', { num_hidden_layers: 4, use_sliding_window: true, sliding_window: 4, max_window_layers: 2 }, ['layer_types']);
  t.deepEqual(config.layer_types, ['full_attention', 'full_attention', 'sliding_attention', 'sliding_attention']);
  t.deepEqual([1, 2].map((i) => layerConfig(config, i).sliding_window), [null, 4]);
  const off = await configOf('qwen3', { num_hidden_layers: 4, use_sliding_window: false, sliding_window: 4, max_window_layers: 2 }, ['layer_types']);
  t.deepEqual([0, 1, 2, 3].map((i) => layerConfig(off, i).sliding_window), [null, null, null, null]);
});

test('qwen3 layer_types slide only with use_sliding_window, as in transformers: without it the window changes nothing', async (t) => {
  t.true((await logitsMatch('qwen3-sliding', {})) <= 1e-4);
  t.true((await logitsMatch('qwen3-sliding', { use_sliding_window: false })) > 1e-3);
});

test('smollm3 with use_sliding_window slides in its NoPE layers', async (t) => {
  const config = await configOf('smollm3', { num_hidden_layers: 4, no_rope_layers: [1, 0, 1, 0], use_sliding_window: true, sliding_window: 8 }, ['layer_types']);
  t.deepEqual([0, 1, 2, 3].map((i) => layerConfig(config, i).sliding_window), [null, 8, null, 8]);
});
