/**
 * The `lora` binary end to end, as a user runs it: results against PEFT's
 * references (packages/adapters/peft-fixtures), and every error as one or two lines
 * naming what is wrong, exit code 1, and nothing left behind.
 */
import test from 'ava';
import { spawn } from 'node:child_process';
import { chmod, cp, mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { SafetensorsFile } from '@lorakit/core/io';
import { BIN, DATA, MODEL, PEFT, REPO, type Run, fails, lora, run, scratch } from './testing.ts';

const GPT2 = `${REPO}packages/models/fixtures/gpt2`;
const LLAMA = `${REPO}packages/models/fixtures/llama-rope-linear`;

/** lora with files limited to `kilobytes` (ulimit counts 512-byte blocks): writes fail part-way, as on a full disk. */
function loraOnFullDisk(kilobytes: number, ...args: string[]): Promise<Run> {
  return run('sh', ['-c', `trap '' XFSZ; ulimit -f ${kilobytes * 2}; exec "$0" "$@"`, process.execPath, BIN, ...args]);
}

const greedy = JSON.parse(await readFile(`${PEFT}/codellama_train_trajectory/greedy.json`, 'utf8')) as Array<{ prompt: string; prompt_ids: number[]; base_ids: number[]; adapter_ids: number[] }>;
const generated = async (...args: string[]) => JSON.parse((await lora('generate', ...args, '--max-new-tokens', '40', '--json')).stdout).tokens as number[];

test('inspect lists each targetable Linear name with its count and the adapter summary', async (t) => {
  const { code, stdout } = await lora('inspect', MODEL, '--adapter', `${PEFT}/codellama_qv_r8/adapter`, '--json');
  t.is(code, 0);
  const summary = JSON.parse(stdout);
  const meta = JSON.parse(await readFile(`${PEFT}/codellama_qv_r8/meta.json`, 'utf8'));
  t.deepEqual(summary.targets, { q_proj: 6, k_proj: 6, v_proj: 6, o_proj: 6, gate_proj: 6, up_proj: 6, down_proj: 6 });
  t.is(summary.adapter.adapter_parameters, meta.trainable_params);
  t.is(summary.adapter.wrapped, 12);
  t.true(summary.adapter.vllm.compatible);
});

test('inspect says what sets each family apart, read from its config.json, and what lorakit supports on it', async (t) => {
  const fixture = (family: string) => `${REPO}packages/models/fixtures/${family}`;
  const phi3 = JSON.parse((await lora('inspect', fixture('phi3'), '--json')).stdout);
  t.deepEqual(phi3.architecture, ['fused qkv_proj and gate_up_proj', 'longrope rotary positions (base 10000) on 4 of 8 dims per head', 'sliding window of 8 positions', 'tied embeddings']);
  t.is(phi3.supports[0], 'LoRA, rsLoRA and DoRA on qkv_proj, o_proj, gate_up_proj, down_proj');
  const gemma2 = (await lora('inspect', fixture('gemma2'))).stdout;
  t.regex(gemma2, /gemma2, [\d,]+ parameters\n {2}norms before and after each sublayer; RMSNorm as x·\(1 \+ w\); gated MLP with gelu_pytorch_tanh; default rotary positions \(base 10000\); 1 of 2 layers with a sliding window of 4 positions; attention scores soft-capped at 2; embeddings times 5\.65685; logits soft-capped at 3; tied embeddings\n/);
  t.regex(gemma2, /lorakit supports on it: LoRA, rsLoRA and DoRA on q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj; LoRA on embed_tokens \(not DoRA\); QLoRA/);
  const smollm3 = JSON.parse((await lora('inspect', fixture('smollm3'), '--json')).stdout);
  t.true(smollm3.architecture.includes('no rotary positions in layers 1'));
  const gemma3 = JSON.parse((await lora('inspect', fixture('gemma3_text'), '--json')).stdout);
  t.deepEqual(gemma3.architecture.filter((f: string) => f.includes('rotary')), ['default rotary positions (base 500) in sliding layers', 'linear rotary positions (base 1000000) in full layers']);
});

test('inspect lists the tensors holding NaN or Infinity', async (t) => {
  const dir = join(await scratch(), 'model');
  await cp(MODEL, dir, { recursive: true });
  const bytes = await readFile(join(dir, 'model.safetensors'));
  bytes.writeUInt16LE(0x7fc0, 8 + Number(bytes.readBigUInt64LE(0))); // the first stored value, model.embed_tokens.weight's: a bf16 NaN
  await writeFile(join(dir, 'model.safetensors'), bytes);
  const { code, stdout } = await lora('inspect', dir, '--json');
  t.is(code, 0);
  t.deepEqual(JSON.parse(stdout).non_finite_tensors, [{ name: 'model.embed_tokens.weight', count: 1 }]);
  t.regex((await lora('inspect', dir)).stdout, /tensors holding NaN or Infinity \(values\): model\.embed_tokens\.weight \(1\)/);
  t.deepEqual(JSON.parse((await lora('inspect', MODEL, '--json')).stdout).non_finite_tensors, []);
});

test('inspect prints the module tree with shapes', async (t) => {
  const { code, stdout } = await lora('inspect', MODEL, '--depth', '5');
  const config = JSON.parse(await readFile(`${MODEL}/config.json`, 'utf8'));
  const kvWidth = config.num_key_value_heads * (config.hidden_size / config.num_attention_heads);
  t.is(code, 0);
  t.true(stdout.includes(`model.layers.0.self_attn.k_proj: Linear  weight [${kvWidth}, ${config.hidden_size}]`), stdout);
  t.regex(stdout, /linear layers that can be targets: q_proj \(6\), k_proj \(6\), v_proj \(6\)/);
});

test('add writes an adapter with PEFT\'s config and prints PEFT\'s trainable-parameters line', async (t) => {
  const out = join(await scratch(), 'adapter');
  const { code, stdout } = await lora('add', MODEL, '--target', 'q_proj,v_proj', '--r', '8', '--alpha', '16', '--out', out);
  t.is(code, 0);
  const meta = JSON.parse(await readFile(`${PEFT}/codellama_qv_r8/meta.json`, 'utf8'));
  t.true(stdout.split('\n').includes(meta.trainable_line), stdout);
  const config = JSON.parse(await readFile(join(out, 'adapter_config.json'), 'utf8'));
  t.like(config, { r: 8, lora_alpha: 16, peft_type: 'LORA', task_type: 'CAUSAL_LM' });
  t.deepEqual([...config.target_modules].sort(), ['q_proj', 'v_proj']);
  const weights = await SafetensorsFile.open(join(out, 'adapter_model.safetensors'));
  t.is(weights.names().length, 24);
  await weights.close();
});

test('a target that matches nothing lists the available names and suggests a close one', async (t) => {
  const dir = await scratch();
  await fails(t, lora('add', MODEL, '--target', 'q_prj,v_proj', '--out', join(dir, 'a')), /"q_prj" \(did you mean q_proj\?\) matched no module.*available: q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj/);
  t.deepEqual(await readdir(dir), []);
});

test('bad numbers in flags are named', async (t) => {
  await fails(t, lora('add', MODEL, '--target', 'q_proj', '--r', '0', '--out', '/tmp/never'), /--r must be a positive integer, got 0/);
  await fails(t, lora('add', MODEL, '--target', 'q_proj', '--alpha', 'abc', '--out', '/tmp/never'), /--alpha must be a positive number/);
  await fails(t, lora('add', MODEL, '--target', 'q_proj', '--dropout', '1.5', '--out', '/tmp/never'), /--dropout must be in \[0, 1\)/);
  await fails(t, lora('train', MODEL, '--target', 'q_proj', '--data', `${DATA}/train.jsonl`, '--lr', '-1', '--out', '/tmp/never'), /--lr must be a positive number, got -1/);
  await fails(t, lora('merge', MODEL, '--adapter', 'a', '--max-shard-size', '5 parsecs', '--out', '/tmp/never'), /--max-shard-size takes a size like 5GB/);
  await fails(t, lora('add', MODEL, '--target', 'q_proj', '--layers', '0-x', '--out', '/tmp/never'), /--layers takes numbers and ranges/);
});

test('a missing model folder, a folder without config.json and an unsupported architecture are named', async (t) => {
  const dir = await scratch();
  await fails(t, lora('inspect', join(dir, 'nowhere')), /nowhere.*config\.json/);
  await fails(t, lora('generate', dir, '--prompt', 'x'), new RegExp(`${dir}/config\\.json`));
  await writeFile(join(dir, 'config.json'), JSON.stringify({ model_type: 'bert', architectures: ['BertForMaskedLM'] }));
  await fails(t, lora('add', dir, '--target', 'query', '--out', join(await scratch(), 'a')), /bert/);
});

test('--verbose adds the stack trace, naming the TypeScript sources', async (t) => {
  const { code, stdout, stderr } = await lora('inspect', join(await scratch(), 'nowhere'), '--verbose');
  t.is(code, 1);
  t.is(stdout, '');
  t.regex(stderr, /nowhere.*config\.json/);
  t.regex(stderr, /\n\s+at .*packages\/models\/src\/[\w/-]+\.ts:\d+/);
});

test('an adapter made for another model is refused with the shapes that do not fit', async (t) => {
  const adapter = `${PEFT}/codellama_qv_r8/adapter`;
  await fails(t, lora('generate', LLAMA, '--adapter', adapter, '--prompt', 'def'), /adapter_model\.safetensors: does not fit this model:\n {2}tensors for modules the model does not have/);
  await fails(t, lora('merge', LLAMA, '--adapter', adapter, '--out', join(await scratch(), 'merged')), /adapter_model\.safetensors: does not fit this model:\n {2}tensors for modules the model does not have/);
  await fails(t, lora('generate', GPT2, '--adapter', adapter, '--prompt', 'def'), /matched no module of the gpt2 model; its linear layers are: c_attn, c_proj, c_fc/);
});

test('unknown commands and flags, and missing required ones, are usage errors', async (t) => {
  await fails(t, lora('mrege', MODEL), /Did you mean merge|Unknown/);
  await fails(t, lora('add', MODEL, '--out', '/tmp/never'), /target/);
  await fails(t, lora('merge', MODEL, '--adapter', 'a', '--out', '/tmp/never', '--colour'), /Unknown argument: colour/);
});

test('--out equal to or inside the input is refused, for merge, add and quantize', async (t) => {
  const adapter = `${PEFT}/codellama_qv_r8/adapter`;
  await fails(t, lora('merge', MODEL, '--adapter', adapter, '--out', MODEL), /--out .* is \(or is inside, or contains\) the input/);
  await fails(t, lora('merge', MODEL, '--adapter', adapter, '--out', join(MODEL, 'merged')), /the input/);
  await fails(t, lora('add', MODEL, '--target', 'q_proj', '--out', MODEL), /the input/);
  await fails(t, lora('quantize', MODEL, '--out', `${MODEL}/../tiny-code-llama`), /the input/);
});

test('an unwritable output folder fails cleanly and leaves nothing behind', async (t) => {
  const dir = await scratch();
  const locked = join(dir, 'locked');
  await mkdir(locked);
  // root ignores permission bits, so make the path unwritable by putting a file where a folder must be
  await writeFile(join(locked, 'file'), '');
  await chmod(locked, 0o555);
  await fails(t, lora('merge', MODEL, '--adapter', `${PEFT}/codellama_qv_r8/adapter`, '--out', join(locked, 'file', 'merged')), /file/);
  await fails(t, lora('add', MODEL, '--target', 'q_proj', '--out', join(locked, 'file', 'a')), /file/);
  t.deepEqual(await readdir(locked), ['file']);
});

test('a disk that fills up during merge or quantize leaves nothing behind', async (t) => {
  const dir = await scratch();
  await fails(t, loraOnFullDisk(1024, 'merge', MODEL, '--adapter', `${PEFT}/codellama_qv_r8/adapter`, '--dtype', 'f32', '--out', join(dir, 'merged')), /model\.safetensors: could not write .*(EFBIG|ENOSPC)/);
  await fails(t, loraOnFullDisk(1024, 'quantize', MODEL, '--out', join(dir, 'nf4')), /EFBIG|ENOSPC/);
  t.deepEqual(await readdir(dir), []);
});

test('generate reproduces transformers\' greedy continuations, without and with the adapter', async (t) => {
  const adapter = `${PEFT}/codellama_train_trajectory/adapter_final`;
  for (const g of greedy) {
    t.deepEqual(await generated(MODEL, '--prompt', g.prompt), g.base_ids.slice(g.prompt_ids.length));
    t.deepEqual(await generated(MODEL, '--adapter', adapter, '--prompt', g.prompt), g.adapter_ids.slice(g.prompt_ids.length));
  }
});

test('generate streams the prompt and completion as text', async (t) => {
  const g = greedy[0];
  const { code, stdout } = await lora('generate', MODEL, '--prompt', g.prompt, '--max-new-tokens', '40');
  t.is(code, 0);
  const { stdout: json } = await lora('generate', MODEL, '--prompt', g.prompt, '--max-new-tokens', '40', '--json');
  t.is(stdout, `${g.prompt}${JSON.parse(json).completion}\n`);
});

test('merge writes PEFT\'s merged weights, and the merged model generates what the adapter model does', async (t) => {
  const out = join(await scratch(), 'merged');
  const { code } = await lora('merge', MODEL, '--adapter', `${PEFT}/codellama_qv_r8/adapter`, '--dtype', 'f32', '--out', out);
  t.is(code, 0);
  const merged = await SafetensorsFile.open(join(out, 'model.safetensors'));
  const reference = await SafetensorsFile.open(`${PEFT}/codellama_qv_r8/merged_subset.safetensors`);
  let worst = 0;
  for (const name of reference.names()) {
    const [a, b] = [await merged.read(name), await reference.read(name)];
    for (let i = 0; i < b.numel; i++) worst = Math.max(worst, Math.abs(a.values[i] - b.values[i]));
  }
  await Promise.all([merged.close(), reference.close()]);
  t.true(worst <= 1e-5, `max abs error ${worst}`);
  t.is(JSON.parse(await readFile(join(out, 'config.json'), 'utf8')).dtype, 'float32');
  t.true((await readdir(out)).includes('tokenizer.json'));

  const trained = join(await scratch(), 'merged');
  await lora('merge', MODEL, '--adapter', `${PEFT}/codellama_train_trajectory/adapter_final`, '--dtype', 'f32', '--out', trained);
  for (const g of greedy) t.deepEqual(await generated(trained, '--prompt', g.prompt), g.adapter_ids.slice(g.prompt_ids.length));
});

test('merge refuses a weight count that does not match the adapters', async (t) => {
  const adapter = `${PEFT}/codellama_qv_r8/adapter`;
  await fails(t, lora('merge', MODEL, '--adapter', adapter, '--adapter', adapter, '--weight', '0.5', '--out', '/tmp/never'), /--weight was given 1 times for 2 --adapter folders/);
});

test('train runs the loop, writes the log, checkpoints and a loadable adapter, and lowers the held-out loss', async (t) => {
  const out = join(await scratch(), 'run');
  const { code, stdout, stderr } = await lora('train', MODEL, '--target', 'q_proj,v_proj', '--data', `${DATA}/train.jsonl`, '--eval', `${DATA}/eval.jsonl`,
    '--out', out, '--max-steps', '6', '--batch-size', '8', '--lr', '3e-3', '--max-length', '64', '--logging-steps', '2', '--save-steps', '3', '--json');
  t.is(code, 0, stderr);
  const summary = JSON.parse(stdout);
  t.is(summary.steps, 6);
  t.true(summary.eval_loss < summary.eval_loss_before);
  const log = (await readFile(join(out, 'training_log.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l));
  t.deepEqual(log.filter((e) => e.loss !== undefined).map((e) => e.step), [2, 4, 6]);
  t.true((await readdir(out)).includes('checkpoint-3'));
  t.is((await lora('inspect', MODEL, '--adapter', join(out, 'adapter'), '--json')).code, 0);
});

test('train names a missing data file and a bad line', async (t) => {
  const dir = await scratch();
  await fails(t, lora('train', MODEL, '--target', 'q_proj', '--data', join(dir, 'none.jsonl'), '--out', join(dir, 'run')), /--data .*none\.jsonl: no such file/);
  await writeFile(join(dir, 'bad.jsonl'), '{"text": "def f(): pass"}\n{"text": \n');
  await fails(t, lora('train', MODEL, '--target', 'q_proj', '--data', join(dir, 'bad.jsonl'), '--out', join(dir, 'run')), /bad\.jsonl:2/);
});

test('quantize writes a bitsandbytes-format checkpoint that generates', async (t) => {
  const out = join(await scratch(), 'nf4');
  const { code, stdout } = await lora('quantize', MODEL, '--out', out, '--json');
  t.is(code, 0);
  t.is(JSON.parse(stdout).quantized_modules.length, 42);
  const config = JSON.parse(await readFile(join(out, 'config.json'), 'utf8'));
  t.like(config.quantization_config, { quant_method: 'bitsandbytes', bnb_4bit_quant_type: 'nf4', bnb_4bit_use_double_quant: true });
  t.is((await generated(out, '--prompt', greedy[0].prompt)).length, 40);
});

test('train --qlora trains on an NF4 base; an existing run folder needs --resume', async (t) => {
  const out = join(await scratch(), 'run');
  const args = ['train', MODEL, '--target', 'q_proj,v_proj', '--data', `${DATA}/train.jsonl`, '--max-steps', '2', '--batch-size', '4', '--max-length', '64', '--out', out, '--json'];
  const { code, stdout, stderr } = await lora(...args, '--qlora');
  t.is(code, 0, stderr);
  t.is(JSON.parse(stdout).steps, 2);
  t.regex(stderr, /trainable params: 43,008 \|\| all params: [\d,]+ \|\| trainable%/);
  const summary = JSON.parse((await lora('inspect', MODEL, '--adapter', join(out, 'adapter'), '--json')).stdout);
  t.is(summary.adapter.adapter_parameters, 43008);
  await fails(t, lora(...args), /--out .* already exists and is not empty/);
});

test('train --load-in-8bit trains on an LLM.int8 base; it does not go with --qlora', async (t) => {
  const out = join(await scratch(), 'run');
  const args = ['train', MODEL, '--target', 'q_proj,v_proj', '--data', `${DATA}/train.jsonl`, '--max-steps', '2', '--batch-size', '4', '--max-length', '64', '--out', out, '--json'];
  await fails(t, lora(...args, '--load-in-8bit', '--qlora'), /--qlora \(4-bit\) and --load-in-8bit each quantize the base: give one/);
  const { code, stdout, stderr } = await lora(...args, '--load-in-8bit');
  t.is(code, 0, stderr);
  t.is(JSON.parse(stdout).steps, 2);
  t.is(JSON.parse((await lora('inspect', MODEL, '--adapter', join(out, 'adapter'), '--json')).stdout).adapter.adapter_parameters, 43008);
});

test('Ctrl-C during train saves a checkpoint, exits 0, and --resume finishes the run', async (t) => {
  const out = join(await scratch(), 'run');
  const args = [BIN, 'train', MODEL, '--target', 'q_proj', '--data', `${DATA}/train.jsonl`, '--max-steps', '40', '--batch-size', '4',
    '--max-length', '64', '--logging-steps', '1', '--progress', 'lines', '--out', out];
  const child = spawn(process.execPath, args, { cwd: REPO });
  let stdout = '';
  child.stdout.on('data', (d) => (stdout += d));
  let stderr = '';
  child.stderr.on('data', (d) => {
    stderr += d;
    if (/step 3\/40/.test(stderr) && child.signalCode === null && !child.killed) child.kill('SIGINT');
  });
  const code = await new Promise((resolve) => child.on('exit', resolve));
  t.is(code, 0);
  t.regex(stdout, /interrupted at step \d+\/40; checkpoint saved, continue with --resume/);
  t.true((await readdir(out)).some((n) => n.startsWith('checkpoint-')));
  const resumed = await lora(...args.slice(1), '--resume', '--json');
  t.is(resumed.code, 0, resumed.stderr);
  t.like(JSON.parse(resumed.stdout), { steps: 40, interrupted: false });
});
