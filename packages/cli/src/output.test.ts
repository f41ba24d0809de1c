/**
 * --out through the real binary: a file there is refused by every command that
 * writes; Ctrl-C or SIGTERM in the middle of a merge leaves nothing behind;
 * after a SIGKILL, the next run removes what the killed one left and finishes.
 * The merge is of a random SmolLM2-135M-shaped bf16 checkpoint into float32
 * (0.5 GB written), large enough to be caught mid-write.
 */
import test from 'ava';
import { spawn } from 'node:child_process';
import { mkdir, readFile, readdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { randomAdapter, randomCheckpoint, SMOLLM2_SHAPES } from '../../../benchmarks/checkpoints.ts';
import { BIN, DATA, MODEL, fails, lora, scratch } from './testing.ts';

test('an existing file at --out is refused by every command that writes, and left as it was', async (t) => {
  const dir = await scratch();
  const file = join(dir, 'notes.txt');
  await writeFile(file, 'my notes\n');
  const commands = [
    ['add', MODEL, '--target', 'q_proj', '--out', file],
    ['merge', MODEL, '--adapter', join(dir, 'adapter'), '--out', file],
    ['quantize', MODEL, '--out', file],
    ['train', MODEL, '--target', 'q_proj', '--data', `${DATA}/train.jsonl`, '--max-steps', '1', '--out', file],
  ];
  await lora('add', MODEL, '--target', 'q_proj', '--out', join(dir, 'adapter'));
  for (const command of commands) {
    await fails(t, lora(...command), /--out .*notes\.txt: is an existing file, not a folder/);
    t.is(await readFile(file, 'utf8'), 'my notes\n', command[0]);
  }
  t.deepEqual((await readdir(dir)).sort(), ['adapter', 'notes.txt']);
});

/** Writes a 135M-shaped bf16 checkpoint and an r=16 adapter on every linear layer, once for the tests below. */
const inputs = (async () => {
  const dir = await scratch();
  return { model: await randomCheckpoint(join(dir, 'model'), SMOLLM2_SHAPES), adapter: await randomAdapter(join(dir, 'adapter'), SMOLLM2_SHAPES, 16) };
})();

interface Stopped {
  code: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
  /** The temporary folder the merge was writing when the signal was sent. */
  temporary: string;
}

/** A float32 merge into `out`, sent `signal` once its output file is part-written. */
async function mergeStoppedBy(signal: NodeJS.Signals, out: string): Promise<Stopped> {
  const { model, adapter } = await inputs;
  const child = spawn(process.execPath, [BIN, 'merge', model, '--adapter', adapter, '--dtype', 'f32', '--out', out]);
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<[number | null, NodeJS.Signals | null]>((resolve) => child.on('exit', (code, s) => resolve([code, s])));
  const temporary = await partWritten(join(out, '..'), `.${out.split('/').pop()}.tmp-${child.pid}-`);
  child.kill(signal);
  const [code, received] = await exited;
  return { code, signal: received, stderr, temporary };
}

/** Polls `dir` until a folder starting with `prefix` holds a file with some bytes in it; returns the folder. */
async function partWritten(dir: string, prefix: string): Promise<string> {
  for (const started = Date.now(); Date.now() - started < 60_000; await new Promise((r) => setTimeout(r, 5))) {
    const temporary = (await readdir(dir)).find((entry) => entry.startsWith(prefix));
    if (temporary === undefined) continue;
    const sizes = await Promise.all((await readdir(join(dir, temporary)).catch(() => [])).map((f) => stat(join(dir, temporary, f)).then((s) => s.size, () => 0)));
    if (sizes.some((size) => size > 0)) return join(dir, temporary);
  }
  throw new Error(`no part-written ${prefix}* in ${dir} within a minute`);
}

for (const [signal, exitCode] of [['SIGINT', 130], ['SIGTERM', 143]] as const) {
  test.serial(`${signal} during a merge removes the unfinished output, says so in one line and exits ${exitCode}`, async (t) => {
    const dir = await scratch();
    const stopped = await mergeStoppedBy(signal, join(dir, 'merged'));
    t.is(stopped.code, exitCode, stopped.stderr);
    t.regex(stopped.stderr, new RegExp(`^lora: stopped by ${signal}; the unfinished output was removed, .*merged is as it was\\n$`));
    t.deepEqual(await readdir(dir), []);
  });
}

test.serial('after a SIGKILL mid-merge, the next run into the same folder removes what it left and merges', async (t) => {
  const dir = await scratch();
  const out = join(dir, 'merged');
  const killed = await mergeStoppedBy('SIGKILL', out);
  t.is(killed.signal, 'SIGKILL');
  t.deepEqual(await readdir(dir), [killed.temporary.split('/').pop()]); // what a killed run leaves
  await mkdir(join(dir, `.merged.tmp-${process.pid}-0123abcd`)); // a running process's: never touched

  const { model, adapter } = await inputs;
  const rerun = await lora('merge', model, '--adapter', adapter, '--dtype', 'f32', '--out', out);
  t.is(rerun.code, 0, rerun.stderr);
  t.true(rerun.stderr.includes(`note: removed ${killed.temporary}, left by an interrupted run\n`), rerun.stderr);
  t.deepEqual((await readdir(dir)).sort(), [`.merged.tmp-${process.pid}-0123abcd`, 'merged']);
  const modelBytes = (await stat(join(model, 'model.safetensors'))).size;
  const mergedBytes = (await stat(join(out, 'model.safetensors'))).size;
  t.true(mergedBytes > 1.9 * modelBytes && mergedBytes < 2.1 * modelBytes, `${mergedBytes} bytes of float32 for ${modelBytes} of bf16`);
});
