import test from 'ava';
import { execFile } from 'node:child_process';
import { mkdtemp, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const repo = fileURLToPath(new URL('..', import.meta.url));

test('the fine-tune example lowers held-out loss clearly and teaches the house style', async (t) => {
  const out = await mkdtemp(join(tmpdir(), 'lorakit-finetune-'));
  const { stdout } = await promisify(execFile)(process.execPath, ['--import=tsx', 'examples/finetune.ts', out], { cwd: repo, env: { ...process.env, LORAKIT_THREADS: '1' } });
  const [, before, after] = /held-out loss ([\d.]+) -> ([\d.]+)/.exec(stdout) ?? [];
  t.true(Number(after) < 0.5 * Number(before), `held-out loss ${before} -> ${after}`);
  t.regex(stdout.split('--- after:')[1] ?? '', /"""Return the add\."""/);
  t.true((await readdir(join(out, 'adapter'))).includes('adapter_model.safetensors'));
});
