/**
 * Output folders: checked before any work (never an input, inside one, or
 * around one; never over existing work unless asked), then built under a
 * temporary name beside the destination and renamed into place, so a failure
 * leaves nothing behind and a success appears at once.
 */
import { mkdir, readdir, realpath, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join, resolve, sep } from 'node:path';
import { fsyncDirectory } from './atomic.ts';
import { FileFormatError } from './errors.ts';
import { temporaryPath, track } from './temporaries.ts';

/** The real path of `path`, or of its parent joined with its name when it does not exist yet. */
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
      throw new FileFormatError('OutputIsInput', out, `is (or is inside, or contains) the input ${input}; write somewhere else`);
    }
  }
  const parent = dirname(resolve(out));
  if (!(await stat(parent).catch(() => null))?.isDirectory()) throw new FileFormatError('MissingFolder', parent, 'is not an existing folder');
  if ((await stat(target).catch(() => null))?.isDirectory() === false) throw new FileFormatError('OutputIsFile', out, 'is an existing file, not a folder; choose a new folder');
  const entries = await readdir(target).catch(() => null);
  if (entries !== null && entries.length > 0 && !allowExisting) throw new FileFormatError('OutputExists', out, 'already exists and is not empty; choose a new folder');
}

/**
 * Build `out` through `write(temporaryFolder)`, then rename it into place
 * (replacing an empty folder or a previous result, never a file).
 */
export async function writeFolderAtomically(out: string, write: (dir: string) => Promise<void>): Promise<void> {
  if ((await stat(out).catch(() => null))?.isDirectory() === false) throw new FileFormatError('OutputIsFile', out, 'is an existing file, not a folder');
  const temporary = temporaryPath(resolve(out));
  const untrack = track(temporary);
  try {
    await mkdir(temporary);
    await write(temporary);
    await fsyncDirectory(temporary);
    await rm(out, { recursive: true, force: true });
    await rename(temporary, out);
  } catch (error) {
    await rm(temporary, { recursive: true, force: true });
    throw error;
  } finally {
    untrack();
  }
  await fsyncDirectory(dirname(resolve(out)));
}
