/**
 * QLoRA: NF4 quantization of a random 1.1B checkpoint (TinyLlama shapes), and
 * one training step, LoRA against QLoRA, on random SmolLM2-135M shapes (r=16,
 * all linear layers, 4x512 tokens), each in its own process.
 *
 *   npm run bench:qlora
 */
import { execFileSync } from 'node:child_process';
import { quantizedCheckpoint, randomCheckpoint, SMOLLM2_SHAPES, TINYLLAMA_SHAPES } from './checkpoints.ts';

const tsx = (script: string, ...args: string[]) => JSON.parse(execFileSync(process.execPath, ['--import=tsx', '--expose-gc', script, ...args], { encoding: 'utf8', maxBuffer: 1 << 24 }).trim().split('\n').at(-1)!);
const MiB = (b: number) => `${(b / 2 ** 20).toFixed(0)} MiB`;

const tiny = await randomCheckpoint('benchmarks/out/tinyllama-1.1b-random', TINYLLAMA_SHAPES);
const q = tsx('benchmarks/compare/lorakit-tasks.ts', 'quantize', tiny);
console.log(`NF4 + double quantization of ${(q.weights / 1e9).toFixed(2)}B linear weights (TinyLlama shapes): ${q.seconds.toFixed(1)} s on every core, ${q.bytesPerWeight.toFixed(4)} bytes per weight (limit about 0.15 s)\n`);

const smol = await randomCheckpoint('benchmarks/out/smollm2-135m-random', SMOLLM2_SHAPES);
const smolNf4 = await quantizedCheckpoint(smol, 'benchmarks/out/smollm2-135m-nf4');
console.log('| SmolLM2-135M shapes | step (4x512) | resident after load | peak RSS |');
console.log('|---|---|---|---|');
for (const [name, dir] of [['LoRA (bf16 checkpoint, float32 base)', smol], ['QLoRA (NF4 checkpoint, double quant)', smolNf4]] as const) {
  const r = tsx('benchmarks/compare/lorakit-tasks.ts', 'train-step', dir, '--steps', '2');
  console.log(`| ${name} | ${r.seconds.toFixed(2)} s | ${MiB(r.loadedRssBytes)} | ${MiB(r.peakRssBytes)} |`);
}
