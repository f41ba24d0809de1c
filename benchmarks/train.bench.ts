/**
 * Training throughput: one optimizer step, LoRA r=16 on all linear layers,
 * 4x512 tokens, on tiny-code-llama and on random SmolLM2-135M shapes, each
 * in its own process so peak RSS is its own. The 135M step's limit on this
 * machine is about 6 s (1.38 TFLOP at peak, docs/engine.md section 5). The 135M
 * step runs again with gradient checkpointing (each decoder layer recomputed
 * in the backward): its peak RSS against the plain step's is what it saves.
 *
 *   npm run bench:train
 */
import { execFileSync } from 'node:child_process';
import { randomCheckpoint, SMOLLM2_SHAPES } from './checkpoints.ts';

function run(dir: string, steps: number, checkpointing: boolean): { stepMs: number; tokensPerSecond: number; peakRssBytes: number; trainable: number } {
  const flags = checkpointing ? ['--gradient-checkpointing'] : [];
  const out = execFileSync(process.execPath, ['--import=tsx', '--expose-gc', 'benchmarks/compare/lorakit-tasks.ts', 'train-step', dir, '--steps', String(steps), ...flags], { encoding: 'utf8' });
  const { seconds, peakRssBytes, trainable } = JSON.parse(out.trim().split('\n').at(-1)!);
  return { stepMs: seconds * 1000, tokensPerSecond: 2048 / seconds, peakRssBytes, trainable };
}

const smol = await randomCheckpoint('benchmarks/out/smollm2-135m-random', SMOLLM2_SHAPES);
console.log('| model | gradient checkpointing | trainable | step (4x512 tokens) | tokens/s | peak RSS | vs the ~6 s limit |');
console.log('|---|---|---|---|---|---|---|');
const runs = [
  ['tiny-code-llama', 'examples/models/tiny-code-llama', 5, false, null],
  ['SmolLM2-135M shapes', smol, 3, false, 6000],
  ['SmolLM2-135M shapes', smol, 3, true, 6000],
] as const;
for (const [name, dir, steps, checkpointing, limitMs] of runs) {
  const r = run(dir, steps, checkpointing);
  const ratio = limitMs === null ? '-' : `${(r.stepMs / limitMs).toFixed(2)}x`;
  console.log(`| ${name} | ${checkpointing ? 'on' : 'off'} | ${r.trainable.toLocaleString('en-US')} | ${(r.stepMs / 1000).toFixed(2)} s | ${Math.round(r.tokensPerSecond)} | ${(r.peakRssBytes / 2 ** 20).toFixed(0)} MiB | ${ratio} |`);
}
