/**
 * What `lora export --format onnx` writes, for onnxruntime and transformers in Python to check
 * (check_lorakit_onnx.py): every architecture fixture's decoder graph (fp32), tiny-code-llama's in q4, and
 * tiny-code-llama with the PEFT adapter fixture folded in and kept apart.
 *
 *   tsx conformance/write-lorakit-onnx.ts conformance/out/lorakit-onnx
 */
import { execFileSync } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';

const out = process.argv[2] ?? 'conformance/out/lorakit-onnx';
const FIXTURES = 'packages/models/fixtures';
const MODEL = 'examples/models/tiny-code-llama';
const ADAPTER = 'packages/adapters/peft-fixtures/codellama_qv_r8/adapter';
const ARCHITECTURES = ['llama', 'llama-rope-linear', 'llama-rope-llama3', 'llama-bf16-tied', 'mistral', 'qwen2', 'gpt2', 'qwen3', 'qwen3-sliding', 'smollm3', 'granite', 'gemma', 'gemma2', 'gemma3_text', 'phi3', 'olmo2'];

const lora = (...args: string[]) => execFileSync(process.execPath, ['packages/cli/bin/lora.mjs', 'export', ...args, '--format', 'onnx'], { stdio: ['ignore', 'ignore', 'pipe'] });

await mkdir(out, { recursive: true });
for (const name of ARCHITECTURES) lora(join(FIXTURES, name), '--out', join(out, name));
lora(MODEL, '--dtype', 'q4', '--out', join(out, 'tiny-code-llama-q4'));
lora(MODEL, '--adapter', ADAPTER, '--out', join(out, 'codellama-merged'));
lora(MODEL, '--adapter', ADAPTER, '--keep-lora', '--out', join(out, 'codellama-lora'));
console.log(`written under ${out}`);
