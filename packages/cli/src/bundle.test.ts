/**
 * The bundle bin/lora.mjs runs when it is fresh (packages/cli/bundle.ts): the
 * bytes the TypeScript writes, through its own worker threads and WebAssembly
 * kernel. Built into a folder of its own, so the other tests' runs are not
 * disturbed.
 */
import test from 'ava';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { bundle } from '../bundle.ts';

const REPO = fileURLToPath(new URL('../../../', import.meta.url));
const MODEL = `${REPO}examples/models/tiny-code-llama`;
const ADAPTER = `${REPO}../shared/fixtures/peft/codellama_qv_r8/adapter`;

function node(args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, args, { cwd: REPO, env: { ...process.env, ...env }, maxBuffer: 16 << 20 }, (error, stdout, stderr) => {
      resolve({ code: error ? 1 : 0, stdout, stderr });
    });
  });
}

test('the bundle merges and quantizes to the bytes the TypeScript writes', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'lora-bundle-'));
  await bundle(join(dir, 'dist'));
  const bundled = (...args: string[]) => node([join(dir, 'dist', 'lora.mjs'), ...args]);
  const fromSource = (...args: string[]) => node([`${REPO}packages/cli/bin/lora.mjs`, ...args], { LORAKIT_FROM_SOURCE: '1' });
  const commands = {
    merge: (out: string) => ['merge', MODEL, '--adapter', ADAPTER, '--out', out],
    quantize: (out: string) => ['quantize', MODEL, '--out', out, '--double-quant'],
  };
  for (const [name, command] of Object.entries(commands)) {
    const [a, b] = await Promise.all([bundled(...command(join(dir, `${name}-bundled`))), fromSource(...command(join(dir, `${name}-source`)))]);
    t.is(a.code, 0, a.stderr);
    t.is(b.code, 0, b.stderr);
    t.deepEqual(await readFile(join(dir, `${name}-bundled`, 'model.safetensors')), await readFile(join(dir, `${name}-source`, 'model.safetensors')), name);
  }
  const [help, sourceHelp] = await Promise.all([bundled('--help'), fromSource('--help')]);
  t.is(help.stdout, sourceHelp.stdout);
  // the bundle's source maps lead a stack trace back to the TypeScript (bin/lora.mjs turns them on for --verbose)
  const failed = await node(['--enable-source-maps', join(dir, 'dist', 'lora.mjs'), 'inspect', join(dir, 'no-such-model'), '--verbose']);
  t.is(failed.code, 1);
  t.regex(failed.stderr, /no-such-model/);
  t.regex(failed.stderr, /\n\s+at .*packages\/models\/src\/[\w/-]+\.ts:\d+/);
});
