/** Running the built `lora` binary as a user does, for this package's tests. */
import type { ExecutionContext } from 'ava';
import { execFile } from 'node:child_process';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO = fileURLToPath(new URL('../../../', import.meta.url));
export const BIN = `${REPO}packages/cli/bin/lora.mjs`;
export const MODEL = `${REPO}examples/models/tiny-code-llama`;
export const PEFT = `${REPO}packages/adapters/peft-fixtures`;
export const DATA = `${REPO}examples/data/house-style`;

export interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

export function run(file: string, args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(file, args, { cwd: REPO, maxBuffer: 64 << 20 }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout, stderr });
    });
  });
}

export function lora(...args: string[]): Promise<Run> {
  return run(process.execPath, [BIN, ...args]);
}

export const scratch = () => mkdtemp(join(tmpdir(), 'lora-cli-'));

/** A failing run: exit 1, a short message matching `pattern`, no stack trace. */
export async function fails(t: ExecutionContext, run: Promise<Run>, pattern: RegExp): Promise<void> {
  const { code, stdout, stderr } = await run;
  t.is(code, 1, stderr);
  t.is(stdout, '');
  t.regex(stderr, pattern);
  t.true(stderr.trim().split('\n').length <= 6, stderr);
  t.notRegex(stderr, /\n\s+at /);
}
