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

refuses('an unknown model_type', () => withConfig((c) => void (c.model_type = 'falcon')), 'UnsupportedArchitecture', /model_type "falcon" is not supported; lorakit supports llama, mistral, qwen2, qwen3, smollm3, granite, gemma, gemma2, gemma3_text, gemma3, phi3, olmo2, gpt2/);
refuses('auto_map with trust_remote_code runs nothing', () => withConfig((c) => ({ ...c, model_type: 'custom', auto_map: { AutoModelForCausalLM: 'x.Model' }, trust_remote_code: true })), 'UnsupportedArchitecture', /"custom"/);
refuses('a config that is not JSON', () => withConfig(() => '{"model_type": "mistral",'), 'ConfigParseError', /config\.json: not valid JSON/);
refuses('a config that is an array', () => withConfig(() => '[1]'), 'ConfigParseError', /must be a JSON object/);
refuses('a config with a duplicate key', () => withConfig(() => '{"model_type": "mistral", "model_type": "llama"}'), 'ConfigParseError', /duplicate key "model_type"/);
refuses('an absurd hidden_size', () => withConfig((c) => void (c.hidden_size = 1e12)), 'InvalidConfig', /hidden_size = 1000000000000 must be a positive integer/);
refuses('a non-integer layer count', () => withConfig((c) => void (c.num_hidden_layers = 2.5)), 'InvalidConfig', /num_hidden_layers/);
refuses('a negative vocabulary', () => withConfig((c) => void (c.vocab_size = -1)), 'InvalidConfig', /vocab_size/);
refuses('heads that do not divide', () => withConfig((c) => void (c.num_key_value_heads = 3)), 'InvalidConfig', /not a multiple of num_key_value_heads 3/);
refuses('a vocabulary that disagrees with the weights', () => withConfig((c) => void (c.vocab_size = 130)), 'CheckpointMismatch', /model\.embed_tokens\.weight: checkpoint \[128,32\], config\.json gives \[130,32\]/);
refuses('qwen3 with use_sliding_window that is not a boolean', () => withConfig((c) => ({ ...c, model_type: 'qwen3', use_sliding_window: 'yes' })), 'InvalidConfig', /use_sliding_window = "yes" must be true or false/);
refuses('smollm3 with a no_rope_layers entry per layer missing', () => withConfig((c) => ({ ...c, model_type: 'smollm3', no_rope_layers: [1] })), 'InvalidConfig', /no_rope_layers must list 0 or 1 for each of the 2 layers, got \[1\]/);
refuses('granite with logits_scaling 0', () => withConfig((c) => ({ ...c, model_type: 'granite', logits_scaling: 0 })), 'InvalidConfig', /logits_scaling = 0 must be a finite number other than 0/);
refuses('granite with a multiplier that is not a number', () => withConfig((c) => ({ ...c, model_type: 'granite', residual_multiplier: '0.2' })), 'InvalidConfig', /residual_multiplier = "0\.2" must be a finite number/);
refuses('gemma2 with a layer_types entry that is neither sliding nor full', () => withConfig((c) => ({ ...c, model_type: 'gemma2', layer_types: ['sliding_attention', 'chunked_attention'] })), 'InvalidConfig', /layer_types must list 'sliding_attention' or 'full_attention' for each of the 2 layers/);
refuses('gemma2 with sliding layers and no window', () => withConfig((c) => ({ ...c, model_type: 'gemma2', sliding_window: null })), 'InvalidConfig', /sliding_window = null must be a positive integer/);
refuses('gemma3_text with bidirectional attention', () => withConfig((c) => ({ ...c, model_type: 'gemma3_text', use_bidirectional_attention: true })), 'InvalidConfig', /gemma3_text with use_bidirectional_attention is not supported/);
refuses('gemma2 with a hidden_activation lorakit does not have', () => withConfig((c) => ({ ...c, model_type: 'gemma2', hidden_activation: 'swish_glu' })), 'InvalidConfig', /hidden_activation "swish_glu" is not supported/);
refuses('phi3 longrope with a short_factor of the wrong length', () => withConfig((c) => ({ ...c, model_type: 'phi3', original_max_position_embeddings: 16, rope_parameters: { rope_type: 'longrope', short_factor: [1], long_factor: [1, 2, 3, 4] } })), 'InvalidConfig', /rope longrope needs short_factor as 4 positive numbers, got \[1\]/);
refuses('phi3 with a rope type lorakit does not have', () => withConfig((c) => ({ ...c, model_type: 'phi3', rope_parameters: { rope_type: 'dynamic', factor: 2 } })), 'UnsupportedRope', /rope type "dynamic" is not supported; lorakit supports default, linear, llama3, longrope/);
