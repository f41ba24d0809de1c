/** Where a command may write: never into (or around) an input folder, never over existing work unless asked. */
import { readdir, realpath, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join, resolve, sep } from 'node:path';
import { UsageError } from './errors.ts';

async function canonical(path: string): Promise<string> {
  const absolute = resolve(path);
  const real = await realpath(absolute).catch(() => null);
  if (real !== null) return real;
  return join(await realpath(dirname(absolute)).catch(() => dirname(absolute)), basename(absolute));
}

export async function checkOutputFolder(out: string, inputs: string[], { allowExisting = false } = {}): Promise<void> {
  const target = await canonical(out);
  for (const input of inputs) {
    const source = await canonical(input);
    if (target === source || target.startsWith(source + sep) || source.startsWith(target + sep)) {
      throw new UsageError(`--out ${out} is (or is inside, or contains) the input ${input}; write somewhere else`);
    }
  }
  const parent = dirname(resolve(out));
  if (!(await stat(parent).catch(() => null))?.isDirectory()) throw new UsageError(`--out ${out}: the folder ${parent} does not exist`);
  const entries = await readdir(target).catch(() => null);
  if (entries !== null && entries.length > 0 && !allowExisting) throw new UsageError(`--out ${out} already exists and is not empty; choose a new folder`);
}

/** Build a folder beside its destination and rename it into place, so a failure leaves nothing behind. */
export async function writeFolderAtomically(out: string, write: (dir: string) => Promise<void>): Promise<void> {
  const temporary = join(dirname(resolve(out)), `.${basename(out)}.partial-${process.pid}`);
  try {
    await write(temporary);
    await rm(out, { recursive: true, force: true }); // an empty folder, or the previous result being replaced
    await rename(temporary, out);
  } catch (error) {
    await rm(temporary, { recursive: true, force: true });
    throw error;
  }
}
