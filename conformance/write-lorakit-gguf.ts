/**
 * What `lora export --format gguf` writes, for the `gguf` Python package and transformers to check
 * (check_lorakit_gguf.py): tiny-code-llama with PEFT's fixture adapter beside it (f32), and in f16.
 *
 *   tsx conformance/write-lorakit-gguf.ts conformance/out/lorakit-gguf
 */
import { execFileSync } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';

const out = process.argv[2] ?? 'conformance/out/lorakit-gguf';
const MODEL = 'examples/models/tiny-code-llama';
const ADAPTER = 'packages/adapters/peft-fixtures/codellama_qv_r8/adapter';
const lora = (...args: string[]) => execFileSync(process.execPath, ['packages/cli/bin/lora.mjs', 'export', MODEL, ...args, '--format', 'gguf'], { stdio: ['ignore', 'ignore', 'pipe'] });

await mkdir(out, { recursive: true });
lora('--adapter', ADAPTER, '--out', join(out, 'f32'));
lora('--dtype', 'f16', '--out', join(out, 'f16'));
console.log(`written under ${out}`);
