/**
 * GGUF models read by llama.cpp itself (node-llama-cpp 3.21.1's prebuilt binaries, a test dependency): the
 * tokenization of the PEFT fixture texts equals the Hugging Face tokenizer's, the log-probabilities of one
 * evaluation equal lorakit's (f32 1e-3, f16 and bf16 looser), greedy generation equals lorakit's; the other
 * architectures' fixtures give transformers' reference logits.
 */
import test from 'ava';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Tensor, noGrad } from '@lorakit/core';
import { SafetensorsFile } from '@lorakit/core/io';
import { fixtureWithTokenizer, useGgmlGelu } from '@lorakit/core/testing';
import { getLlama, LlamaLogLevel, type ControlledEvaluateInputItem, type Llama, type LlamaModel, type Token } from 'node-llama-cpp';
import { AutoModelForCausalLM } from '../auto.ts';
import { generate } from '../generation.ts';
import { FIXTURES, PEFT_FIXTURES, TINY_CODE_LLAMA } from '../testing.ts';
import { writeGgufModel, type GgufDtype } from './gguf-model.ts';

// One thread: ggml's threads wait for each other by spinning, which collapses when ava's other process holds a core.
const CACHE = { threads: 1, flashAttention: false, experimentalKvCacheKeyType: 'F32', experimentalKvCacheValueType: 'F32' } as const;
let llama: Promise<Llama> | null = null;
const llamaCpp = () => (llama ??= getLlama({ gpu: false, build: 'never', logLevel: LlamaLogLevel.error }));

async function exported(source: string, dtype: GgufDtype = 'f32', warnings: string[] = []): Promise<LlamaModel> {
  const path = join(await mkdtemp(join(tmpdir(), 'lorakit-gguf-')), 'model.gguf');
  await writeGgufModel(await AutoModelForCausalLM.fromPretrained(source), path, { source, dtype, onWarning: (m) => warnings.push(m) });
  return (await llamaCpp()).loadModel({ modelPath: path });
}

/** llama.cpp's log-probabilities after `ids` (a float32 cache, so only the weights' type differs from lorakit). */
async function logProbabilities(model: LlamaModel, ids: number[], contextSize = 256): Promise<Float64Array> {
  const context = await model.createContext({ contextSize, ...CACHE });
  const sampling = { probabilities: true, options: { temperature: 1, topK: 0, topP: 1, minP: 0 } };
  const input = ids.map((id, i): ControlledEvaluateInputItem => (i === ids.length - 1 ? [id as Token, { generateNext: sampling }] : (id as Token)));
  const probabilities = (await context.getSequence().controlledEvaluate(input)).at(-1)!.next!.probabilities!;
  await context.dispose();
  return Float64Array.from({ length: probabilities.size }, (_, v) => Math.log(probabilities.get(v as Token) ?? 0));
}

/** lorakit's log-probabilities (the logits less their log-sum-exp) after `ids`. */
function lorakitLogProbabilities(logits: Tensor): Float64Array {
  const [, length, vocab] = logits.shape;
  const last = Float64Array.from(logits.values.subarray((length - 1) * vocab, length * vocab));
  const top = Math.max(...last);
  const sum = Math.log(last.reduce((s, v) => s + Math.exp(v - top), 0)) + top;
  return last.map((v) => v - sum);
}

/**
 * lorakit's log-probabilities after `ids` from the checkpoint in `dir`, its GELU computed as llama.cpp's CPU
 * computes it (core/testing's useGgmlGelu: float16 in and out), so that only the file is compared.
 */
async function lorakitAfter(dir: string, ids: number[]): Promise<Float64Array> {
  const lorakit = await AutoModelForCausalLM.fromPretrained(dir, { onWarning: () => {} });
  useGgmlGelu(lorakit);
  return lorakitLogProbabilities(noGrad(() => lorakit.call({ inputIds: Tensor.fromArray([ids], 'int64') })).logits);
}

const maxDiff = (a: Float64Array, b: Float64Array) => (a.length === b.length ? a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0) : Infinity);

/** An architecture fixture with a byte-level tokenizer (they have none), and `changes` to its config. */
const withTokenizer = (fixture: string, changes?: (config: Record<string, unknown>) => Record<string, unknown>) => fixtureWithTokenizer(join(FIXTURES, fixture), changes);

test('llama.cpp tokenizes the fixture texts as the Hugging Face tokenizer does', async (t) => {
  const model = await exported(TINY_CODE_LLAMA);
  const cases = JSON.parse(await readFile(join(PEFT_FIXTURES, 'tokenization.json'), 'utf8')) as Array<{ text: string; ids: number[] }>;
  for (const { text, ids } of cases) t.deepEqual(Array.from(model.tokenize(text)), ids, JSON.stringify(text));
  await model.dispose();
});

// measured here: f32 1.8e-5, f16 8.1e-3, bf16 3.4e-2, q8_0 0.28 (llama.cpp also quantizes the activations to 8 bits)
for (const [dtype, tolerance] of [['f32', 1e-3], ['f16', 2e-2], ['bf16', 1e-1], ['q8_0', 0.4]] as const) {
  test(`llama.cpp's log-probabilities from the ${dtype} GGUF equal lorakit's (${tolerance})${dtype === 'f32' ? ', and 40 greedy tokens are the same' : ''}`, async (t) => {
    const model = await exported(TINY_CODE_LLAMA, dtype);
    const lorakit = await AutoModelForCausalLM.fromPretrained(TINY_CODE_LLAMA);
    const ids = [330, 1146, 9, 66, 13, 305, 328, 268, 353, 274, 475, 305, 200, 1040, 27];
    const expected = lorakitLogProbabilities(noGrad(() => lorakit.call({ inputIds: Tensor.fromArray([ids], 'int64') })).logits);
    const diff = maxDiff(await logProbabilities(model, ids), expected);
    t.log(`log-probabilities differ by ${diff}`);
    t.true(diff <= tolerance, `log-probabilities differ by ${diff}`);
    if (dtype === 'f32') {
      const context = await model.createContext({ contextSize: 256, ...CACHE });
      const tokens: number[] = [];
      for await (const token of context.getSequence().evaluate(ids.slice(0, 5) as Token[], { temperature: 0 })) if (tokens.push(token) >= 40) break;
      await context.dispose();
      t.deepEqual([...ids.slice(0, 5), ...tokens], generate(lorakit, [ids.slice(0, 5)], { maxNewTokens: 40, eosTokenId: null })[0]);
    }
    await model.dispose();
  });
}

test('a sliding window llama.cpp\'s llama architecture ignores is said, and within it the log-probabilities equal lorakit\'s (1e-4)', async (t) => {
  const dir = await withTokenizer('mistral'); // a window of 4 positions
  const warnings: string[] = [];
  const model = await exported(dir, 'f32', warnings);
  t.deepEqual(warnings, [`${dir}: the model attends within a sliding window of 4 positions, llama.cpp's llama architecture to every position: outputs differ once a sequence is longer than 4 tokens`]);
  const ids = [5, 17, 29, 3];
  const diff = maxDiff(await logProbabilities(model, ids), await lorakitAfter(dir, ids));
  t.log(`log-probabilities differ by ${diff}`);
  t.true(diff <= 1e-4, `log-probabilities differ by ${diff}`);
  await model.dispose();
});

for (const fixture of ['llama', 'llama-rope-linear', 'llama-rope-llama3', 'qwen2', 'qwen3', 'granite', 'olmo2', 'gemma', 'gpt2']) {
  // measured 1.3e-7 (llama) to 3.2e-5 (gpt2); without llama3's rope_freqs that fixture is 4.4e-4 off
  test(`${fixture}: llama.cpp's log-probabilities from the GGUF equal transformers' (1e-4)`, async (t) => {
    const model = await exported(await withTokenizer(fixture));
    const reference = await SafetensorsFile.open(join(FIXTURES, fixture, 'reference.safetensors'));
    const [inputIds, logits] = [await reference.read('input_ids'), await reference.read('logits')];
    await reference.close();
    const length = inputIds.shape[1];
    const ids = inputIds.toArray().slice(0, length); // row 0, unpadded
    const expected = lorakitLogProbabilities(new Tensor(logits.values.slice(0, length * logits.shape[2]), [1, length, logits.shape[2]]));
    const diff = maxDiff(await logProbabilities(model, ids), expected);
    t.log(`log-probabilities differ by ${diff}`);
    t.true(diff <= 1e-4, `log-probabilities differ by ${diff}`);
    await model.dispose();
  });
}

test('gemma2: llama.cpp\'s log-probabilities equal lorakit\'s with sliding and full layers and both soft caps (1e-4); a query scale llama.cpp does not take is refused', async (t) => {
  const refused = await AutoModelForCausalLM.fromPretrained(join(FIXTURES, 'gemma2'));
  await t.throwsAsync(writeGgufModel(refused, join(await mkdtemp(join(tmpdir(), 'lorakit-gguf-')), 'model.gguf'), { source: join(FIXTURES, 'gemma2') }), { message: /its query_pre_attn_scalar 24 is not its head_dim 16, and llama.cpp's gemma2 scales queries by 1\/√head_dim/ });
  const dir = await withTokenizer('gemma2', (c) => ({ query_pre_attn_scalar: c.head_dim }));
  const model = await exported(dir);
  const ids = [5, 17, 29, 3, 44, 90, 12, 7, 61, 33, 2, 100]; // past the window of 4
  const diff = maxDiff(await logProbabilities(model, ids), await lorakitAfter(dir, ids));
  t.log(`log-probabilities differ by ${diff}`);
  t.true(diff <= 1e-4, `log-probabilities differ by ${diff}`);
  await model.dispose();
});

// gemma3's fixtures have one sliding and one full layer: llama.cpp's sliding_window_pattern 2
for (const [fixture, change, refusal] of [
  ['gemma3_text', (c: Record<string, unknown>) => ({ query_pre_attn_scalar: c.head_dim }), /its query_pre_attn_scalar 24 is not its head_dim 16/],
  ['smollm3', () => ({ no_rope_layers: [1, 1] }), /its layers without rotary positions are not every fourth/],
  // a checkpoint with a vision model beside the language model: the language model is written, as llama.cpp's gemma3
  ['gemma3', (c: Record<string, unknown>) => ({ text_config: { ...(c.text_config as object), query_pre_attn_scalar: 16 } }), /this gemma3 model is refused: its query_pre_attn_scalar 24 is not its head_dim 16/],
] as const) {
  test(`${fixture}: llama.cpp's log-probabilities equal lorakit's (1e-4) for a config it computes as transformers does; the fixture's own is refused with why`, async (t) => {
    const refused = await AutoModelForCausalLM.fromPretrained(join(FIXTURES, fixture));
    await t.throwsAsync(writeGgufModel(refused, join(await mkdtemp(join(tmpdir(), 'lorakit-gguf-')), 'model.gguf'), { source: join(FIXTURES, fixture) }), { message: refusal });
    const dir = await withTokenizer(fixture, change);
    const model = await exported(dir);
    const ids = [5, 17, 29, 3, 44, 90, 12, 7, 61, 33, 2, 100];
    const diff = maxDiff(await logProbabilities(model, ids), await lorakitAfter(dir, ids));
    t.log(`log-probabilities differ by ${diff}`);
    t.true(diff <= 1e-4, `log-probabilities differ by ${diff}`);
    await model.dispose();
  });
}

test('an MLP activation llama.cpp\'s architecture does not compute is refused by name', async (t) => {
  for (const [fixture, changes, message] of [
    ['gemma2', () => ({ hidden_activation: 'silu' }), /this gemma2 model's MLP computes silu; llama.cpp's gemma2 computes gelu_pytorch_tanh/],
    ['qwen2', () => ({ hidden_act: 'gelu_pytorch_tanh' }), /this qwen2 model's MLP computes gelu_pytorch_tanh; llama.cpp's qwen2 computes silu/],
  ] as const) {
    const dir = await withTokenizer(fixture, changes);
    await t.throwsAsync(writeGgufModel(await AutoModelForCausalLM.fromPretrained(dir), join(dir, 'model.gguf'), { source: dir }), { message });
  }
});

test('gemma3: sliding layers with no pattern llama.cpp has (the last of every p layers full) are refused by name', async (t) => {
  const dir = await withTokenizer('gemma3_text', (c) => ({ query_pre_attn_scalar: c.head_dim, layer_types: ['full_attention', 'sliding_attention'] }));
  const model = await AutoModelForCausalLM.fromPretrained(dir);
  await t.throwsAsync(writeGgufModel(model, join(dir, 'model.gguf'), { source: dir }), { message: /this gemma3_text model is refused: its sliding layers follow no pattern llama.cpp's gemma3 has/ });
});

test('phi3: llama.cpp\'s log-probabilities equal lorakit\'s (1e-4) with longrope\'s short factors and with its long ones, the difference in when they apply said', async (t) => {
  const dir = await withTokenizer('phi3', (c) => ({ sliding_window: null, max_position_embeddings: 1024, original_max_position_embeddings: 256, rope_parameters: { ...(c.rope_parameters as object), original_max_position_embeddings: 256 } }));
  const warnings: string[] = [];
  const model = await exported(dir, 'f32', warnings);
  t.deepEqual(warnings, [`${dir}: llama.cpp takes longrope's long factors for every token once its context is larger than 256 positions, transformers (and lorakit) only for a sequence longer than 256 tokens: run it with a context of at most 256 for the short factors`]);
  const short = [5, 17, 29, 3, 44, 90, 12, 7, 61, 33, 2, 100];
  const long = Array.from({ length: 300 }, (_, i) => (i * 37 + 5) % 128);
  for (const [ids, contextSize] of [[short, 256], [long, 512]] as const) {
    const diff = maxDiff(await logProbabilities(model, [...ids], contextSize), await lorakitAfter(dir, [...ids]));
    t.log(`${ids.length} tokens: log-probabilities differ by ${diff}`);
    t.true(diff <= 1e-4, `${ids.length} tokens: log-probabilities differ by ${diff}`);
  }
  await model.dispose();
});
