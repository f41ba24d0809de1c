/**
 * `lora merge` of a random 1.1B bf16 checkpoint (TinyLlama shapes) with an
 * r=16 adapter on every linear layer: peak RSS and time, next to what this
 * machine needs just to read the input and write the output.
 *
 *   npm run bench:merge
 */
import { spawnSync } from 'node:child_process';
import { rmSync, statSync } from 'node:fs';
import { randomAdapter, randomCheckpoint, TINYLLAMA_SHAPES } from './checkpoints.ts';
import { diskLimit } from './compare/limits.ts';
import { median } from './stats.ts';

const OUT = 'benchmarks/out';
const GB = (bytes: number) => `${(bytes / 1e9).toFixed(2)} GB`;

/** One `lora merge` in its own process, measured by /usr/bin/time -v. */
function timedMerge(model: string, adapter: string, out: string): { seconds: number; peakRssBytes: number } {
  rmSync(out, { recursive: true, force: true });
  return timedRun(['merge', model, '--adapter', adapter, '--out', out]);
}

function timedRun(args: string[]): { seconds: number; peakRssBytes: number } {
  const run = spawnSync('/usr/bin/time', ['-v', process.execPath, 'packages/cli/bin/lora.mjs', ...args], { encoding: 'utf8' });
  if (run.status !== 0) throw new Error(`lora ${args[0]} failed:\n${run.stderr}`);
  const field = (label: string) => /: (.*)$/.exec(run.stderr.split('\n').find((l) => l.includes(label))!)![1];
  const [m, s] = field('Elapsed (wall clock)').split(':').map(Number);
  return { seconds: m * 60 + s, peakRssBytes: Number(field('Maximum resident set size')) * 1024 };
}

const model = await randomCheckpoint(`${OUT}/tinyllama-1.1b-random`, TINYLLAMA_SHAPES);
const adapter = await randomAdapter(`${OUT}/tinyllama-lora-r16`, TINYLLAMA_SHAPES, 16);
const bytes = statSync(`${model}/model.safetensors`).size;
console.log(`model ${GB(bytes)} bf16, adapter ${GB(statSync(`${adapter}/adapter_model.safetensors`).size)} (r=16 on every linear layer)`);

// The floor: copy the checkpoint, read from the page cache (as the merge reads it) and written straight to the
// disk (O_DIRECT, as the merge writes). This disk's speed drifts, so each merge runs right after its own floor.
// And the same command with an adapter on the first layer only: almost all of it a copy through the same pipeline.
const firstLayer = await randomAdapter(`${OUT}/tinyllama-lora-r16-layer0`, TINYLLAMA_SHAPES, 16, { layers: 1 });
const rounds = [0, 1, 2, 3, 4].map(() => ({
  limit: diskLimit(`${model}/model.safetensors`, `${OUT}/dd.bin`),
  merge: timedMerge(model, adapter, `${OUT}/tinyllama-merged`),
  copy: timedMerge(model, firstLayer, `${OUT}/tinyllama-merged`).seconds,
}));
// What the command takes before it reads a tensor: Node, loading lorakit, parsing the flags (`lora --help`).
const start = median([0, 1, 2, 3, 4].map(() => timedRun(['--help']).seconds));
// Merged into float32, every tensor is converted and held whole on its way through: memory bounded all the same.
const f32Out = `${OUT}/tinyllama-merged-f32`;
rmSync(f32Out, { recursive: true, force: true });
const toFloat32 = timedRun(['merge', model, '--adapter', adapter, '--dtype', 'f32', '--out', f32Out]);
rmSync(`${OUT}/tinyllama-merged`, { recursive: true, force: true });
rmSync(f32Out, { recursive: true, force: true });
const [limit, time] = [median(rounds.map((r) => r.limit)), median(rounds.map((r) => r.merge.seconds))];
const ratio = median(rounds.map((r) => r.merge.seconds / r.limit));
const peak = Math.max(...rounds.map((r) => r.merge.peakRssBytes));
console.log(`copy (read + direct write) ${limit.toFixed(2)} s = ${(bytes / limit / 1e9).toFixed(2)} GB/s (median of 5)`);
console.log(`lora merge: median ${time.toFixed(2)} s over 5 runs (${rounds.map((r) => r.merge.seconds.toFixed(2)).join(', ')}); median ratio to the limit of its round ${ratio.toFixed(2)}x; peak RSS ${GB(peak)} (target < 1.5 GB)`);
const streaming = median(rounds.map((r) => (r.merge.seconds - start) / r.limit));
console.log(`of which starting the command (\`lora --help\`) ${start.toFixed(2)} s; the rest, from reading the adapter to the synced output, ${streaming.toFixed(2)}x the copy (median)`);
console.log(`with the adapter on the first layer only (7 of 154 weights merged): median ${median(rounds.map((r) => r.copy)).toFixed(2)} s; all 154 take ${median(rounds.map((r) => r.merge.seconds / r.copy)).toFixed(2)}x that`);
console.log(`merged into float32 instead (4.40 GB written, every tensor converted): ${toFloat32.seconds.toFixed(2)} s, peak RSS ${GB(toFloat32.peakRssBytes)}`);
