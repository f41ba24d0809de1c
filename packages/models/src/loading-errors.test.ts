/** Bad model folders get one clear error naming the file and the field (docs/reliability.md section C). */
import test from 'ava';
import { cp, mkdtemp, readFile, writeFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AutoModelForCausalLM } from './auto.ts';
import { AutoTokenizer } from './tokenizer.ts';
import { FIXTURES } from './testing.ts';

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

refuses('an unknown model_type', () => withConfig((c) => void (c.model_type = 'falcon')), 'UnsupportedArchitecture', /model_type "falcon" is not supported; lorakit supports llama, mistral, qwen2, gpt2/);
refuses('auto_map with trust_remote_code runs nothing', () => withConfig((c) => ({ ...c, model_type: 'custom', auto_map: { AutoModelForCausalLM: 'x.Model' }, trust_remote_code: true })), 'UnsupportedArchitecture', /"custom"/);
refuses('a config that is not JSON', () => withConfig(() => '{"model_type": "mistral",'), 'ConfigParseError', /config\.json: not valid JSON/);
refuses('a config that is an array', () => withConfig(() => '[1]'), 'ConfigParseError', /must be a JSON object/);
refuses('a config with a duplicate key', () => withConfig(() => '{"model_type": "mistral", "model_type": "llama"}'), 'ConfigParseError', /duplicate key "model_type"/);
refuses('an absurd hidden_size', () => withConfig((c) => void (c.hidden_size = 1e12)), 'InvalidConfig', /hidden_size = 1000000000000 must be a positive integer/);
refuses('a non-integer layer count', () => withConfig((c) => void (c.num_hidden_layers = 2.5)), 'InvalidConfig', /num_hidden_layers/);
refuses('a negative vocabulary', () => withConfig((c) => void (c.vocab_size = -1)), 'InvalidConfig', /vocab_size/);
refuses('heads that do not divide', () => withConfig((c) => void (c.num_key_value_heads = 3)), 'InvalidConfig', /not a multiple of num_key_value_heads 3/);
refuses('a vocabulary that disagrees with the weights', () => withConfig((c) => void (c.vocab_size = 130)), 'CheckpointMismatch', /model\.embed_tokens\.weight: checkpoint \[128,32\], config\.json gives \[130,32\]/);
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
