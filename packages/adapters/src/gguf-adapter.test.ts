/**
 * Adapter GGUFs applied by llama.cpp itself (node-llama-cpp 3.21.1) over the base model's GGUF: PEFT's fixture
 * adapter generates what lorakit's adapter model and the merged GGUF generate; an all-linear rsLoRA adapter with
 * an alpha_pattern (its scaling folded into lora_b, q/k rows permuted) gives lorakit's log-probabilities; what a
 * GGUF adapter cannot hold is refused with the reason, nothing written.
 */
import test from 'ava';
import { mkdtemp, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Tensor, manualSeed, noGrad } from '@lorakit/core';
import { init } from '@lorakit/core';
import { fixtureWithTokenizer, useGgmlGelu } from '@lorakit/core/testing';
import { AutoModelForCausalLM, generate, writeGgufModel } from '@lorakit/models';
import { getLlama, LlamaLogLevel, type ControlledEvaluateInputItem, type LlamaModel, type Token } from 'node-llama-cpp';
import { LoraConfig, type LoraConfigFields } from './config.ts';
import { PeftModel, getPeftModel } from './peft-model.ts';
import { writeGgufAdapter } from './gguf-adapter.ts';
import { MODEL_FIXTURES, PEFT_FIXTURES, TINY_CODE_LLAMA } from './testing.ts';

// One thread: ggml's threads wait for each other by spinning, which collapses when ava's other process holds a core.
const CACHE = { threads: 1, flashAttention: false, experimentalKvCacheKeyType: 'F32', experimentalKvCacheValueType: 'F32' } as const;
const llama = getLlama({ gpu: false, build: 'never', logLevel: LlamaLogLevel.error });
const PROMPT = [330, 1146, 9, 66, 13];

async function scratch(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'lorakit-gguf-adapter-'));
}

/** llama.cpp's 40 greedy tokens after PROMPT, with the adapter GGUF applied when given. */
async function greedy(model: LlamaModel, adapter?: string): Promise<number[]> {
  const context = await model.createContext({ contextSize: 128, ...CACHE, ...(adapter ? { lora: { adapters: [{ filePath: adapter }] } } : {}) });
  const tokens: number[] = [];
  for await (const token of context.getSequence().evaluate(PROMPT as Token[], { temperature: 0 })) if (tokens.push(token) >= 40) break;
  await context.dispose();
  return [...PROMPT, ...tokens];
}

test('PEFT\'s adapter as a GGUF applied by llama.cpp generates what lorakit\'s adapter model and the merged GGUF generate', async (t) => {
  const dir = await scratch();
  const base = await AutoModelForCausalLM.fromPretrained(TINY_CODE_LLAMA);
  await writeGgufModel(base, join(dir, 'model.gguf'), { source: TINY_CODE_LLAMA });
  const peft = await PeftModel.fromPretrained(base, join(PEFT_FIXTURES, 'codellama_qv_r8', 'adapter'));
  writeGgufAdapter(peft, 'default', join(dir, 'adapter.gguf'));
  const [expected] = generate(peft, [PROMPT], { maxNewTokens: 40, eosTokenId: null });
  await writeGgufModel(peft.mergeAndUnload(), join(dir, 'merged.gguf'), { source: TINY_CODE_LLAMA });
  const model = await (await llama).loadModel({ modelPath: join(dir, 'model.gguf') });
  t.deepEqual(await greedy(model, join(dir, 'adapter.gguf')), expected);
  t.notDeepEqual(await greedy(model), expected, 'the adapter changes the tokens');
  await model.dispose();
  const merged = await (await llama).loadModel({ modelPath: join(dir, 'merged.gguf') });
  t.deepEqual(await greedy(merged), expected);
  await merged.dispose();
});

/** llama.cpp's log-probabilities after `ids` from the model GGUF with the adapter GGUF applied, and lorakit's from `peft`. */
async function logProbabilities(modelPath: string, adapterPath: string, peft: PeftModel, ids: number[]): Promise<{ llamaCpp: Float64Array; lorakit: Float64Array }> {
  peft.eval();
  // GELU as llama.cpp's CPU computes it (float16 in and out), so that only the files are compared
  useGgmlGelu(peft);
  const logits = noGrad(() => peft.call({ inputIds: Tensor.fromArray([ids], 'int64') })).logits;
  const last = Float64Array.from(logits.values.subarray((ids.length - 1) * logits.shape[2]));
  const top = Math.max(...last);
  const lse = Math.log(last.reduce((s, v) => s + Math.exp(v - top), 0)) + top;
  const model = await (await llama).loadModel({ modelPath });
  const context = await model.createContext({ contextSize: 128, ...CACHE, lora: { adapters: [{ filePath: adapterPath }] } });
  const sampling = { probabilities: true, options: { temperature: 1, topK: 0, topP: 1, minP: 0 } };
  const input = ids.map((id, i): ControlledEvaluateInputItem => (i === ids.length - 1 ? [id as Token, { generateNext: sampling }] : (id as Token)));
  const probabilities = (await context.getSequence().controlledEvaluate(input)).at(-1)!.next!.probabilities!;
  await context.dispose();
  await model.dispose();
  return { llamaCpp: last.map((_, i) => Math.log(probabilities.get(i as Token) ?? 0)), lorakit: last.map((v) => v - lse) };
}

const maxDiff = (a: Float64Array, b: Float64Array) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);

/** `config` on the model in `source` with lora_B drawn at random (PEFT's zeros would change nothing), as GGUF files. */
async function exportedAdapter(source: string, config: LoraConfig): Promise<{ dir: string; peft: PeftModel }> {
  const dir = await scratch();
  const base = await AutoModelForCausalLM.fromPretrained(source, { onWarning: () => {} });
  await writeGgufModel(base, join(dir, 'model.gguf'), { source, onWarning: () => {} });
  manualSeed(3);
  const peft = getPeftModel(base, config);
  for (const [, p] of peft.namedParameters().filter(([name]) => name.includes('lora_B'))) init.normal_(p, 0, 0.05);
  writeGgufAdapter(peft, 'default', join(dir, 'adapter.gguf'));
  return { dir, peft };
}

test('an all-linear rsLoRA adapter with alpha and rank patterns gives lorakit\'s log-probabilities through llama.cpp (1e-4)', async (t) => {
  const { dir, peft } = await exportedAdapter(TINY_CODE_LLAMA, new LoraConfig({ r: 8, loraAlpha: 16, targetModules: 'all-linear', useRslora: true, alphaPattern: { v_proj: 4 }, rankPattern: { o_proj: 4 } }));
  const { llamaCpp, lorakit } = await logProbabilities(join(dir, 'model.gguf'), join(dir, 'adapter.gguf'), peft, PROMPT);
  const diff = maxDiff(llamaCpp, lorakit);
  t.log(`log-probabilities differ by ${diff}`);
  t.true(diff <= 1e-4, `log-probabilities differ by ${diff}`);
});

// phi3's fused qkv_proj and gate_up_proj; gemma3's language model inside a vision checkpoint; qwen2's biases
const ARCHITECTURES: Array<[string, (config: Record<string, unknown>) => Record<string, unknown>]> = [
  ['phi3', (c) => ({ sliding_window: null, max_position_embeddings: 1024, original_max_position_embeddings: 256, rope_parameters: { ...(c.rope_parameters as object), original_max_position_embeddings: 256 } })],
  ['gemma3', (c) => ({ text_config: { ...(c.text_config as object), query_pre_attn_scalar: 16 } })],
  ['qwen2', () => ({})],
];
for (const [fixture, changes] of ARCHITECTURES) {
  test(`${fixture}: an all-linear adapter as a GGUF gives lorakit's log-probabilities through llama.cpp (1e-4)`, async (t) => {
    const source = await fixtureWithTokenizer(join(MODEL_FIXTURES, fixture), changes);
    const { dir, peft } = await exportedAdapter(source, new LoraConfig({ r: 4, loraAlpha: 8, targetModules: 'all-linear' }));
    const { llamaCpp, lorakit } = await logProbabilities(join(dir, 'model.gguf'), join(dir, 'adapter.gguf'), peft, [5, 17, 29, 3, 44, 90, 12, 7]);
    const diff = maxDiff(llamaCpp, lorakit);
    t.log(`log-probabilities differ by ${diff}`);
    t.true(diff <= 1e-4, `log-probabilities differ by ${diff}`);
  });
}

const REFUSED: Array<[string, Partial<LoraConfigFields>, RegExp]> = [
  ['DoRA', { useDora: true }, /DoRA's magnitudes have no place in a GGUF adapter; merge it into the model instead \(lora export --merge\)/],
  ['modules_to_save', { modulesToSave: ['lm_head'] }, /modules_to_save \(lm_head\) has no place in a GGUF adapter/],
  ['a trained bias', { bias: 'all' }, /trained biases \(bias "all"\) have no place in a GGUF adapter/],
];
for (const [what, config, reason] of REFUSED) {
  test(`an adapter with ${what} is refused with the reason, and no file is written`, async (t) => {
    const dir = await scratch();
    const peft = getPeftModel(await AutoModelForCausalLM.fromPretrained(TINY_CODE_LLAMA), new LoraConfig({ targetModules: ['q_proj'], ...config }));
    t.throws(() => writeGgufAdapter(peft, 'default', join(dir, 'adapter.gguf')), { message: reason });
    t.deepEqual(await readdir(dir), []);
  });
}

test('LoRA on a head tied to the embedding is refused: the base GGUF has no head tensor of its own', async (t) => {
  const peft = getPeftModel(await AutoModelForCausalLM.fromPretrained(TINY_CODE_LLAMA), new LoraConfig({ targetModules: ['lm_head'] }));
  const path = join(await scratch(), 'adapter.gguf');
  t.throws(() => writeGgufAdapter(peft, 'default', path), { message: /LoRA on lm_head, a head tied to the embedding/ });
});
