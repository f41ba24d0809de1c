/**
 * An exported tiny-code-llama, loaded by transformers.js (the @huggingface/transformers of this workspace):
 * its greedy generation equals lorakit's, its logits equal lorakit's (fp32, 1e-4), q4 stays near fp32,
 * weights past the inline limit go to model.onnx_data and still load, and a failed export leaves nothing.
 */
import test from 'ava';
import { mkdtemp, readFile, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Tensor, noGrad } from '@lorakit/core';
import { AutoModelForCausalLM as TjsModel, Tensor as TjsTensor, env, pipeline } from '@huggingface/transformers';
import { AutoModelForCausalLM } from '../auto.ts';
import { AutoTokenizer } from '../tokenizer.ts';
import { generate } from '../generation.ts';
import { argmax } from '../sampling.ts';
import { FIXTURES, TINY_CODE_LLAMA } from '../testing.ts';
import { exportOnnx, type OnnxDtype } from './onnx-folder.ts';

env.allowRemoteModels = false;
const PROMPT = 'def add(a, b):';

async function exported(dtype: OnnxDtype, options: { maxInlineBytes?: number } = {}): Promise<string> {
  const out = join(await mkdtemp(join(tmpdir(), 'lorakit-onnx-')), 'model');
  await exportOnnx(await AutoModelForCausalLM.fromPretrained(TINY_CODE_LLAMA), out, { source: TINY_CODE_LLAMA, dtype, ...options });
  return out;
}

const int64 = (ids: number[]) => new TjsTensor('int64', BigInt64Array.from(ids, BigInt), [1, ids.length]);

/** transformers.js' greedy tokens and its logits for the prompt. */
async function transformersJs(dir: string, dtype: OnnxDtype, prompt: number[]): Promise<{ tokens: number[]; logits: Float32Array }> {
  const model = await TjsModel.from_pretrained(dir, { local_files_only: true, dtype });
  try {
    const inputs = { input_ids: int64(prompt), attention_mask: int64(prompt.map(() => 1)) };
    const generated = (await model.generate({ ...inputs, max_new_tokens: 40, do_sample: false })) as TjsTensor;
    const { logits } = (await model(inputs)) as { logits: TjsTensor };
    return { tokens: Array.from(generated.data as BigInt64Array, Number), logits: logits.data as Float32Array };
  } finally {
    await model.dispose();
  }
}

async function lorakit(prompt: number[]): Promise<{ tokens: number[]; logits: Float32Array }> {
  const model = await AutoModelForCausalLM.fromPretrained(TINY_CODE_LLAMA);
  const [tokens] = generate(model, [prompt], { maxNewTokens: 40 });
  const { logits } = noGrad(() => model.call({ inputIds: Tensor.fromArray([prompt], 'int64') }));
  return { tokens, logits: logits.values as Float32Array };
}

function maxDiff(a: Float32Array, b: Float32Array): number {
  return a.length === b.length ? a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0) : Infinity;
}

test('transformers.js runs the exported fp32 model as lorakit does: 40 greedy tokens and the logits (1e-4)', async (t) => {
  const prompt = (await AutoTokenizer.fromPretrained(TINY_CODE_LLAMA)).encode(PROMPT);
  const dir = await exported('fp32');
  const [ours, theirs] = [await lorakit(prompt), await transformersJs(dir, 'fp32', prompt)];
  t.deepEqual(theirs.tokens, ours.tokens);
  t.true(maxDiff(theirs.logits, ours.logits) <= 1e-4, `logits differ by ${maxDiff(theirs.logits, ours.logits)}`);
  const config = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8'));
  t.deepEqual(config['transformers.js_config'], { dtype: 'fp32' });
  t.deepEqual((await readdir(join(dir, 'onnx'))).sort(), ['model.onnx']);
});

test('transformers.js\' text-generation pipeline reads the exported folder, tokenizer included', async (t) => {
  const dir = await exported('fp32');
  const generator = await pipeline('text-generation', dir, { local_files_only: true, dtype: 'fp32' });
  const [output] = (await generator(PROMPT, { max_new_tokens: 12, do_sample: false })) as Array<{ generated_text: string }>;
  const model = await AutoModelForCausalLM.fromPretrained(TINY_CODE_LLAMA);
  const tokenizer = await AutoTokenizer.fromPretrained(TINY_CODE_LLAMA);
  const [ids] = generate(model, [tokenizer.encode(PROMPT)], { maxNewTokens: 12 });
  t.is(output.generated_text, tokenizer.decode(ids, { skipSpecialTokens: true }));
  await generator.dispose();
});

test('q4 (MatMulNBits) loads in transformers.js and generates; its logits stay within 12% of fp32\'s (relative L2) with the same top token at 9 positions in 10', async (t) => {
  const tokenizer = await AutoTokenizer.fromPretrained(TINY_CODE_LLAMA);
  const prompt = tokenizer.encode(`${PROMPT}\n    """Return the sum."""\n    result = a + b\n    return result`);
  const dir = await exported('q4');
  t.deepEqual(await readdir(join(dir, 'onnx')), ['model_q4.onnx']);
  const [ours, theirs] = [await lorakit(prompt), await transformersJs(dir, 'q4', prompt)];
  t.is(theirs.tokens.length, prompt.length + 40);
  const relative = Math.sqrt(theirs.logits.reduce((s, v, i) => s + (v - ours.logits[i]) ** 2, 0) / ours.logits.reduce((s, v) => s + v * v, 0));
  t.true(relative > 0 && relative <= 0.12, `q4 logits differ from fp32 by ${relative} (relative L2)`);
  const vocab = ours.logits.length / prompt.length;
  const top = (logits: Float32Array, p: number) => argmax(logits.subarray(p * vocab, (p + 1) * vocab));
  const agreeing = prompt.filter((_, p) => top(theirs.logits, p) === top(ours.logits, p)).length;
  t.true(agreeing >= 0.9 * prompt.length, `the top token agrees at ${agreeing} of ${prompt.length} positions`);
});

// phi3 only to 14 positions: past original_max_position_embeddings (its fixture's 16) transformers recomputes the
// cache with the long factors, and so does lorakit; transformers.js keeps its cache.
const FAMILIES = ['llama', 'mistral', 'qwen2', 'gpt2', 'qwen3', 'qwen3-sliding', 'smollm3', 'granite', 'gemma', 'gemma2', 'gemma3_text', 'phi3', 'olmo2'];
for (const name of FAMILIES) {
  test(`${name}: transformers.js generates from the exported graph what lorakit generates`, async (t) => {
    const source = join(FIXTURES, name);
    const out = join(await mkdtemp(join(tmpdir(), 'lorakit-onnx-')), 'model');
    const model = await AutoModelForCausalLM.fromPretrained(source);
    await exportOnnx(model, out, { source });
    const prompt = [5, 17, 29, 3, 44];
    const newTokens = name === 'phi3' ? 9 : 20;
    const tjs = await TjsModel.from_pretrained(out, { local_files_only: true, dtype: 'fp32' });
    const generated = (await tjs.generate({ input_ids: int64(prompt), attention_mask: int64(prompt.map(() => 1)), max_new_tokens: newTokens, do_sample: false, eos_token_id: null } as never)) as TjsTensor;
    await tjs.dispose();
    t.deepEqual(Array.from(generated.data as BigInt64Array, Number), generate(model, [prompt], { maxNewTokens: newTokens, eosTokenId: null, decoder: 'eager' })[0]);
  });
}

test('a gemma3 checkpoint is written as its language model, gemma3_text, which transformers.js generates from as lorakit does', async (t) => {
  const source = join(FIXTURES, 'gemma3');
  const out = join(await mkdtemp(join(tmpdir(), 'lorakit-onnx-')), 'model');
  const model = await AutoModelForCausalLM.fromPretrained(source, { onWarning: () => {} });
  await exportOnnx(model, out, { source });
  const config = JSON.parse(await readFile(join(out, 'config.json'), 'utf8'));
  t.like(config, { model_type: 'gemma3_text', architectures: ['Gemma3ForCausalLM'], final_logit_softcapping: null });
  const prompt = [5, 17, 29, 3, 44];
  const tjs = await TjsModel.from_pretrained(out, { local_files_only: true, dtype: 'fp32' });
  const generated = (await tjs.generate({ input_ids: int64(prompt), attention_mask: int64(prompt.map(() => 1)), max_new_tokens: 20, do_sample: false })) as TjsTensor;
  await tjs.dispose();
  t.deepEqual(Array.from(generated.data as BigInt64Array, Number), generate(model, [prompt], { maxNewTokens: 20, eosTokenId: null, decoder: 'eager' })[0]);
});

test('lora\'s q4 decoding generates what transformers.js generates from the exported q4 folder', async (t) => {
  const prompt = (await AutoTokenizer.fromPretrained(TINY_CODE_LLAMA)).encode(PROMPT);
  const dir = await exported('q4');
  const model = await AutoModelForCausalLM.fromPretrained(TINY_CODE_LLAMA);
  const [ours] = generate(model, [prompt], { maxNewTokens: 40, dtype: 'q4' });
  t.deepEqual((await transformersJs(dir, 'q4', prompt)).tokens, ours);
  t.notDeepEqual(ours, generate(model, [prompt], { maxNewTokens: 40 })[0], 'the 4-bit weights make a difference');
});

test('weights past the inline limit go to model.onnx_data, which transformers.js reads', async (t) => {
  const prompt = (await AutoTokenizer.fromPretrained(TINY_CODE_LLAMA)).encode(PROMPT);
  const dir = await exported('fp32', { maxInlineBytes: 1e6 });
  t.deepEqual((await readdir(join(dir, 'onnx'))).sort(), ['model.onnx', 'model.onnx_data']);
  t.true((await stat(join(dir, 'onnx', 'model.onnx'))).size < 1e6);
  const config = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8'));
  t.deepEqual(config['transformers.js_config'], { dtype: 'fp32', use_external_data_format: { 'model.onnx': 1 } });
  t.deepEqual((await transformersJs(dir, 'fp32', prompt)).tokens, (await lorakit(prompt)).tokens);
});

test('an export that fails while writing leaves nothing behind, not even its temporary folder', async (t) => {
  const parent = await mkdtemp(join(tmpdir(), 'lorakit-onnx-'));
  const model = await AutoModelForCausalLM.fromPretrained(TINY_CODE_LLAMA);
  const failing = (stage: string) => {
    if (stage.startsWith('writing')) throw new Error('disk full');
  };
  await t.throwsAsync(exportOnnx(model, join(parent, 'model'), { source: TINY_CODE_LLAMA, onStage: failing }), { message: 'disk full' });
  t.deepEqual(await readdir(parent), []);
  await rm(parent, { recursive: true });
});
