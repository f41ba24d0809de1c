/**
 * `lora export --format onnx`: the PEFT adapter fixture folded in (or kept as LoRA layers), loaded by
 * transformers.js, generates what `lora generate --adapter` does; bad input is refused before anything is written.
 */
import test from 'ava';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { AutoModelForCausalLM, Tensor, env } from '@huggingface/transformers';
import { getLlama, LlamaLogLevel, type Token } from 'node-llama-cpp';
import { MODEL, PEFT, REPO, fails, lora, scratch } from './testing.ts';

env.allowRemoteModels = false;
const ADAPTER = join(PEFT, 'codellama_qv_r8', 'adapter');
const PROMPT = 'def add(a, b):';

/** The 40 tokens transformers.js generates greedily from the exported folder after the prompt's ids. */
async function transformersJsTokens(dir: string, prompt: number[], dtype: 'fp32' | 'q4' = 'fp32'): Promise<number[]> {
  const model = await AutoModelForCausalLM.from_pretrained(dir, { local_files_only: true, dtype });
  const ids = (values: number[]) => new Tensor('int64', BigInt64Array.from(values, BigInt), [1, values.length]);
  const out = (await model.generate({ input_ids: ids(prompt), attention_mask: ids(prompt.map(() => 1)), max_new_tokens: 40, do_sample: false })) as Tensor;
  await model.dispose();
  return Array.from(out.data as BigInt64Array, Number).slice(prompt.length);
}

for (const keepLora of [false, true]) {
  test(`an export with the adapter ${keepLora ? 'kept as LoRA layers' : 'folded in'} generates in transformers.js what lora generate --adapter does`, async (t) => {
    const out = join(await scratch(), 'onnx');
    const exported = await lora('export', MODEL, '--adapter', ADAPTER, '--format', 'onnx', '--out', out, '--json', ...(keepLora ? ['--keep-lora'] : []));
    t.is(exported.code, 0, exported.stderr);
    t.like(JSON.parse(exported.stdout), { out, format: 'onnx', dtype: 'fp32' });
    const graph = await readFile(join(out, 'onnx', 'model.onnx'));
    t.is(graph.includes('lora_A.adapter_0.weight'), keepLora);
    const { stdout } = await lora('generate', MODEL, '--adapter', ADAPTER, '--prompt', PROMPT, '--max-new-tokens', '40', '--json');
    const { tokens } = JSON.parse(stdout) as { tokens: number[] };
    t.deepEqual(await transformersJsTokens(out, await promptIds()), tokens);
  });
}

/** The prompt's ids, as lorakit's tokenizer (the one lora generate uses) encodes them. */
async function promptIds(): Promise<number[]> {
  const { AutoTokenizer } = await import('@lorakit/models');
  return (await AutoTokenizer.fromPretrained(MODEL)).encode(PROMPT);
}

test('lora generate --dtype q4 generates what transformers.js generates from lora export --dtype q4 --keep-lora', async (t) => {
  const out = join(await scratch(), 'onnx-q4');
  const exported = await lora('export', MODEL, '--adapter', ADAPTER, '--keep-lora', '--format', 'onnx', '--dtype', 'q4', '--out', out); // base weights 4-bit, LoRA's float, as generate's
  t.is(exported.code, 0, exported.stderr);
  const { stdout } = await lora('generate', MODEL, '--adapter', ADAPTER, '--prompt', PROMPT, '--max-new-tokens', '40', '--dtype', 'q4', '--json');
  t.deepEqual(await transformersJsTokens(out, await promptIds(), 'q4'), (JSON.parse(stdout) as { tokens: number[] }).tokens);
});

/** llama.cpp's 40 greedy tokens after the prompt (one thread: ggml's threads spin-wait for each other). */
async function llamaCppTokens(model: string, prompt: number[], adapter?: string): Promise<number[]> {
  const llama = await getLlama({ gpu: false, build: 'never', logLevel: LlamaLogLevel.error });
  const loaded = await llama.loadModel({ modelPath: model });
  const context = await loaded.createContext({ contextSize: 128, threads: 1, ...(adapter ? { lora: { adapters: [{ filePath: adapter }] } } : {}) });
  const tokens: number[] = [];
  for await (const token of context.getSequence().evaluate(prompt as Token[], { temperature: 0 })) if (tokens.push(token) >= 40) break;
  await loaded.dispose();
  return tokens;
}

test('lora export --format gguf: llama.cpp with the adapter GGUF, and the --merge GGUF, generate what lora generate --adapter does', async (t) => {
  const dir = await scratch();
  const apart = await lora('export', MODEL, '--adapter', ADAPTER, '--format', 'gguf', '--out', join(dir, 'apart'), '--json');
  t.is(apart.code, 0, apart.stderr);
  t.deepEqual(JSON.parse(apart.stdout).files, ['model.gguf', 'adapter.gguf', 'Modelfile']);
  t.is(await readFile(join(dir, 'apart', 'Modelfile'), 'utf8'), 'FROM ./model.gguf\nADAPTER ./adapter.gguf\n');
  const merged = await lora('export', MODEL, '--adapter', ADAPTER, '--format', 'gguf', '--merge', '--out', join(dir, 'merged'));
  t.is(merged.code, 0, merged.stderr);
  const { stdout } = await lora('generate', MODEL, '--adapter', ADAPTER, '--prompt', PROMPT, '--max-new-tokens', '40', '--json');
  const { tokens } = JSON.parse(stdout) as { tokens: number[] };
  const prompt = await promptIds();
  t.deepEqual(await llamaCppTokens(join(dir, 'apart', 'model.gguf'), prompt, join(dir, 'apart', 'adapter.gguf')), tokens);
  t.deepEqual(await llamaCppTokens(join(dir, 'merged', 'model.gguf'), prompt), tokens);
});

test('lora export refuses an existing --out and leaves it as it was', async (t) => {
  const out = join(await scratch(), 'taken');
  await mkdir(out);
  await writeFile(join(out, 'mine.txt'), 'keep');
  await fails(t, lora('export', MODEL, '--format', 'onnx', '--out', out), /--out .*taken: already exists and is not empty/);
  t.deepEqual(await readdir(out), ['mine.txt']);
});

test('lora export refuses an adapter that loading refuses, and writes nothing', async (t) => {
  const dir = await scratch();
  const adapter = join(dir, 'broken');
  await mkdir(adapter);
  await writeFile(join(adapter, 'adapter_config.json'), '{"peft_type": "LORA", "r": 0}');
  await fails(t, lora('export', MODEL, '--adapter', adapter, '--format', 'onnx', '--out', join(dir, 'onnx')), /adapter_config\.json/);
  t.deepEqual(await readdir(dir), ['broken']);
});

test('a DoRA adapter is folded in, and refused with a reason when asked to stay apart', async (t) => {
  const dir = await scratch();
  const [base, dora] = [join(REPO, 'packages/models/fixtures/llama-bf16-tied'), join(REPO, 'packages/adapters/fixtures/dora/adapter')];
  await fails(t, lora('export', base, '--adapter', dora, '--keep-lora', '--format', 'onnx', '--out', join(dir, 'apart')), /DoRA's row norms are computed outside the graph \(fold the adapter in: merge it\)/);
  t.deepEqual(await readdir(dir), []);
  const folded = await lora('export', base, '--adapter', dora, '--format', 'onnx', '--out', join(dir, 'folded'));
  t.is(folded.code, 0, folded.stderr);
  t.deepEqual(await readdir(join(dir, 'folded', 'onnx')), ['model.onnx']);
});

test('lora export --keep-lora needs exactly one adapter', async (t) => {
  const out = join(await scratch(), 'onnx');
  await fails(t, lora('export', MODEL, '--keep-lora', '--format', 'onnx', '--out', out), /--keep-lora keeps one adapter as LoRA layers; give it with --adapter/);
  await fails(t, lora('export', MODEL, '--keep-lora', '--adapter', ADAPTER, '--adapter', ADAPTER, '--format', 'onnx', '--out', out), /2 were given/);
});

test('lora export names the formats and dtypes it writes, and which dtypes and flags go with which format', async (t) => {
  const out = join(await scratch(), 'onnx');
  await fails(t, lora('export', MODEL, '--format', 'tflite', '--out', out), /format, Given: "tflite", Choices: "onnx", "gguf"/);
  await fails(t, lora('export', MODEL, '--format', 'onnx', '--dtype', 'q8_0', '--out', out), /--dtype q8_0 is not a onnx dtype; --format onnx takes fp32, q4/);
  await fails(t, lora('export', MODEL, '--format', 'gguf', '--dtype', 'q4', '--out', out), /--dtype q4 is not a gguf dtype; --format gguf takes f32, f16, bf16, q8_0/);
  await fails(t, lora('export', MODEL, '--format', 'gguf', '--keep-lora', '--adapter', ADAPTER, '--out', out), /--keep-lora is for --format onnx/);
  await fails(t, lora('export', MODEL, '--format', 'onnx', '--merge', '--adapter', ADAPTER, '--out', out), /--merge is for --format gguf/);
  await fails(t, lora('export', MODEL, '--format', 'gguf', '--merge', '--out', out), /--merge folds adapters into the model: give them with --adapter/);
});
