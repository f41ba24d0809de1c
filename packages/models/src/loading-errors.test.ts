/** Bad model folders get one clear error naming the file and the field (docs/reliability.md section C). */
import test from 'ava';
import { createHash } from 'node:crypto';
import { cp, mkdtemp, readFile, readdir, writeFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AutoModelForCausalLM } from './auto.ts';
import { AutoTokenizer } from './tokenizer.ts';
import { CONFIG_DTYPES, loadConfig } from './config.ts';
import { FIXTURES, TINY_CODE_LLAMA } from './testing.ts';

const root = await mkdtemp(join(tmpdir(), 'lorakit-load-'));
let counter = 0;

/** A copy of the mistral fixture with config.json edited. */
async function withConfig(edit: (config: Record<string, unknown>) => unknown): Promise<string> {
  const dir = join(root, `case-${counter++}`);
  await cp(`${FIXTURES}/mistral`, dir, { recursive: true });
  const config = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8'));
  const edited = edit(config) ?? config;
  await writeFile(join(dir, 'config.json'), typeof edited === 'string' ? edited : JSON.stringify(edited));
  return dir;
}

function refuses(title: string, make: () => Promise<string>, code: string, detail: RegExp) {
  test(`${title}: ${code}`, async (t) => {
    const dir = await make();
    const error = await t.throwsAsync(AutoModelForCausalLM.fromPretrained(dir));
    t.is(error?.name, code, error?.message);
    t.regex(error!.message, detail);
  });
}

refuses('an unknown model_type', () => withConfig((c) => void (c.model_type = 'falcon')), 'UnsupportedArchitecture', /model_type "falcon" is not supported; lorakit supports llama, mistral, qwen2, qwen3, smollm3, granite, gpt2/);
refuses('auto_map with trust_remote_code runs nothing', () => withConfig((c) => ({ ...c, model_type: 'custom', auto_map: { AutoModelForCausalLM: 'x.Model' }, trust_remote_code: true })), 'UnsupportedArchitecture', /"custom"/);
refuses('a config that is not JSON', () => withConfig(() => '{"model_type": "mistral",'), 'ConfigParseError', /config\.json: not valid JSON/);
refuses('a config that is an array', () => withConfig(() => '[1]'), 'ConfigParseError', /must be a JSON object/);
refuses('a config with a duplicate key', () => withConfig(() => '{"model_type": "mistral", "model_type": "llama"}'), 'ConfigParseError', /duplicate key "model_type"/);
refuses('an absurd hidden_size', () => withConfig((c) => void (c.hidden_size = 1e12)), 'InvalidConfig', /hidden_size = 1000000000000 must be a positive integer/);
refuses('a non-integer layer count', () => withConfig((c) => void (c.num_hidden_layers = 2.5)), 'InvalidConfig', /num_hidden_layers/);
refuses('a negative vocabulary', () => withConfig((c) => void (c.vocab_size = -1)), 'InvalidConfig', /vocab_size/);
refuses('heads that do not divide', () => withConfig((c) => void (c.num_key_value_heads = 3)), 'InvalidConfig', /not a multiple of num_key_value_heads 3/);
refuses('a vocabulary that disagrees with the weights', () => withConfig((c) => void (c.vocab_size = 130)), 'CheckpointMismatch', /model\.embed_tokens\.weight: checkpoint \[128,32\], config\.json gives \[130,32\]/);
refuses('qwen3 with a sliding window', () => withConfig((c) => ({ ...c, model_type: 'qwen3', use_sliding_window: true })), 'InvalidConfig', /qwen3 with use_sliding_window is not supported/);
refuses('qwen3 with sliding layers', () => withConfig((c) => ({ ...c, model_type: 'qwen3', layer_types: ['full_attention', 'sliding_attention'] })), 'InvalidConfig', /qwen3 layer_types other than full_attention are not supported/);
refuses('smollm3 with a no_rope_layers entry per layer missing', () => withConfig((c) => ({ ...c, model_type: 'smollm3', no_rope_layers: [1] })), 'InvalidConfig', /no_rope_layers must list 0 or 1 for each of the 2 layers, got \[1\]/);
refuses('granite with logits_scaling 0', () => withConfig((c) => ({ ...c, model_type: 'granite', logits_scaling: 0 })), 'InvalidConfig', /logits_scaling = 0 must be a finite number other than 0/);
refuses('granite with a multiplier that is not a number', () => withConfig((c) => ({ ...c, model_type: 'granite', residual_multiplier: '0.2' })), 'InvalidConfig', /residual_multiplier = "0\.2" must be a finite number/);
refuses('an unsupported rope type', () => withConfig((c) => void (c.rope_parameters = { rope_type: 'yarn', factor: 4 })), 'UnsupportedRope', /rope type "yarn" is not supported; lorakit supports default, linear, llama3/);
refuses('a folder without config.json', async () => {
  const dir = await withConfig(() => undefined);
  await rm(join(dir, 'config.json'));
  return dir;
}, 'MissingConfig', /config\.json: no model config here/);
refuses('a missing folder', async () => join(root, 'does-not-exist'), 'MissingConfig', /does-not-exist/);
refuses('a checkpoint with a layer too few', () => withConfig((c) => void (c.num_hidden_layers = 3)), 'CheckpointMismatch', /missing \(\d+\):\n\s+model\.layers\.2\./);

test('a checkpoint with extra tensors names them', async (t) => {
  const dir = await withConfig((c) => void (c.num_hidden_layers = 1));
  const error = await t.throwsAsync(AutoModelForCausalLM.fromPretrained(dir));
  t.regex(error!.message, /unexpected \(\d+\):\n\s+"model\.layers\.1\./);
});

test('a model folder without a tokenizer says which file is missing', async (t) => {
  const error = await t.throwsAsync(AutoTokenizer.fromPretrained(`${FIXTURES}/mistral`));
  t.is(error?.name, 'MissingTokenizer');
  t.regex(error!.message, /tokenizer\.json: missing/);
});

/** A copy of the mistral fixture whose config.json holds `"dtype": "float32"` replaced, as text, by `entries`. */
async function withDtypeText(entries: string): Promise<string> {
  const dir = join(root, `case-${counter++}`);
  await cp(`${FIXTURES}/mistral`, dir, { recursive: true });
  const text = await readFile(join(dir, 'config.json'), 'utf8');
  if (!text.includes('"dtype": "float32",')) throw new Error('the fixture config.json changed');
  await writeFile(join(dir, 'config.json'), Buffer.from(text.replace('"dtype": "float32",', entries), 'utf8'));
  return dir;
}

async function folderHash(dir: string): Promise<string> {
  const hash = createHash('sha256');
  for (const name of (await readdir(dir)).sort()) hash.update(name).update(await readFile(join(dir, name)));
  return hash.digest('hex');
}

for (const [field, value] of [
  ['dtype', '"auto"'], ['dtype', '"torch.float16"'], ['dtype', '"fp16"'], ['dtype', '"Float32"'], ['dtype', '"int8"'], ['dtype', '16'],
  ['torch_dtype', '"bf16"'], ['torch_dtype', '{"text_config": "float32"}'],
] as const) {
  test(`an unknown ${field} ${value} is InvalidConfig naming the field and the accepted values`, async (t) => {
    const dir = await withDtypeText(`"${field}": ${value},`);
    const before = await folderHash(dir);
    const error = await t.throwsAsync(AutoModelForCausalLM.fromPretrained(dir));
    t.is(error?.name, 'InvalidConfig', error?.message);
    t.true(error!.message.startsWith(join(dir, 'config.json')), error!.message);
    t.true(error!.message.includes(`${field} = ${JSON.stringify(JSON.parse(value))}`), error!.message);
    t.true(error!.message.endsWith(`use one of ${CONFIG_DTYPES.join(', ')}`), error!.message);
    t.is(await folderHash(dir), before, 'the folder is untouched');
  });
}

test('a valid dtype does not excuse an unknown torch_dtype beside it', async (t) => {
  const dir = await withDtypeText('"dtype": "bfloat16", "torch_dtype": "auto",');
  await t.throwsAsync(loadConfig(dir), { name: 'InvalidConfig', message: /torch_dtype = "auto" is not a dtype/ });
});

test('every dtype spelling transformers resolves is accepted in either field, and null or absent is too', async (t) => {
  for (const value of [...CONFIG_DTYPES.map((d) => `"${d}"`), 'null']) {
    for (const field of ['dtype', 'torch_dtype']) {
      const config = await loadConfig(await withDtypeText(`"${field}": ${value},`));
      t.is(config.model_type, 'mistral');
    }
  }
  t.is((await loadConfig(await withDtypeText(''))).model_type, 'mistral');
});

/** A copy of tiny-code-llama whose bf16 model.norm.weight starts with NaN and +Infinity. */
async function withNonFiniteNorm(): Promise<string> {
  const dir = join(root, `case-${counter++}`);
  await cp(TINY_CODE_LLAMA, dir, { recursive: true });
  const file = join(dir, 'model.safetensors');
  const bytes = await readFile(file);
  const headerLength = Number(bytes.readBigUInt64LE(0));
  const begin = 8 + headerLength + JSON.parse(bytes.subarray(8, 8 + headerLength).toString('utf8'))['model.norm.weight'].data_offsets[0];
  bytes.writeUInt16LE(0x7fc0, begin); // bf16 NaN
  bytes.writeUInt16LE(0x7f80, begin + 2); // bf16 +Infinity
  await writeFile(file, bytes);
  return dir;
}

test('a checkpoint whose weights hold NaN or Infinity loads with a warning naming the tensors', async (t) => {
  const dir = await withNonFiniteNorm();
  const warnings: string[] = [];
  await AutoModelForCausalLM.fromPretrained(dir, { onWarning: (m) => warnings.push(m) });
  t.deepEqual(warnings.filter((w) => /NaN/.test(w)), [`${dir}: NaN or Infinity in "model.norm.weight" (2 values)`]);
  const clean: string[] = [];
  await AutoModelForCausalLM.fromPretrained(TINY_CODE_LLAMA, { onWarning: (m) => clean.push(m) });
  t.deepEqual(clean.filter((w) => /NaN/.test(w)), []);
});
