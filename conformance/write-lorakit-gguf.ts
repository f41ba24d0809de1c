/**
 * What `lora export --format gguf` writes, for the `gguf` Python package and transformers to check
 * (check_lorakit_gguf.py): tiny-code-llama with PEFT's fixture adapter beside it (f32), and in f16; every
 * architecture fixture in f32 (with a byte-level tokenizer, which the fixtures lack, and the config changes the
 * unit tests make where llama.cpp would compute the fixture's own otherwise); gemma3 with PEFT's adapter fixture.
 *
 *   tsx conformance/write-lorakit-gguf.ts conformance/out/lorakit-gguf
 */
import { execFileSync } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { fixtureWithTokenizer } from '@lorakit/core/testing';

const out = process.argv[2] ?? 'conformance/out/lorakit-gguf';
const FIXTURES = 'packages/models/fixtures';
const MODEL = 'examples/models/tiny-code-llama';
const ADAPTER = 'packages/adapters/peft-fixtures/codellama_qv_r8/adapter';
const GEMMA3_ADAPTER = 'packages/adapters/fixtures/gemma3-language-model-qv/adapter';
type Changes = (config: Record<string, unknown>) => Record<string, unknown>;
const GEMMA3_TEXT: Changes = (c) => ({ query_pre_attn_scalar: c.head_dim });
const ARCHITECTURES: Record<string, Changes> = {
  llama: () => ({}), 'llama-rope-linear': () => ({}), 'llama-rope-llama3': () => ({}), 'llama-bf16-tied': () => ({}), mistral: () => ({}),
  qwen2: () => ({}), qwen3: () => ({}), 'qwen3-sliding': () => ({}), granite: () => ({}), olmo2: () => ({}), gemma: () => ({}), gpt2: () => ({}), phi3: () => ({}),
  gemma2: (c) => ({ query_pre_attn_scalar: c.head_dim }),
  gemma3_text: GEMMA3_TEXT,
  gemma3: (c) => ({ text_config: { ...(c.text_config as Record<string, unknown>), ...GEMMA3_TEXT(c.text_config as Record<string, unknown>) } }),
  smollm3: () => ({ no_rope_layers: [1, 1] }),
};

const lora = (...args: string[]) => execFileSync(process.execPath, ['packages/cli/bin/lora.mjs', 'export', ...args, '--format', 'gguf'], { stdio: ['ignore', 'ignore', 'pipe'] });

await mkdir(join(out, 'architectures'), { recursive: true });
lora(MODEL, '--adapter', ADAPTER, '--out', join(out, 'f32'));
lora(MODEL, '--dtype', 'f16', '--out', join(out, 'f16'));
for (const [name, changes] of Object.entries(ARCHITECTURES)) {
  const source = await fixtureWithTokenizer(join(FIXTURES, name), changes);
  lora(source, ...(name === 'gemma3' ? ['--adapter', GEMMA3_ADAPTER] : []), '--out', join(out, 'architectures', name));
}
console.log(`written under ${out}`);
