/**
 * Atomic writes: a temporary file beside the target (created exclusively),
 * fsync, rename over the target, fsync the folder. An interrupted write leaves
 * the previous file, never a half-written one; a failed one leaves no temp.
 */
import { lstat, open, rename, rm, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import { temporaryPath, track } from './temporaries.ts';

/** Refuse to write through a symbolic link at the output path. */
export async function assertNotSymlink(path: string): Promise<void> {
  const stat = await lstat(path).catch(() => null);
  if (stat?.isSymbolicLink()) throw new Error(`${path}: refusing to write through a symbolic link`);
}

export async function fsyncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Write `path` through `write(handle)` atomically. */
export async function writeFileAtomic(path: string, write: (handle: FileHandle) => Promise<void>): Promise<void> {
  await assertNotSymlink(path);
  const temp = temporaryPath(path);
  const untrack = track(temp);
  const handle = await open(temp, 'wx', 0o644);
  try {
    await write(handle);
    await handle.sync();
    await handle.close();
    await rename(temp, path);
  } catch (error) {
    await handle.close().catch(() => {});
    await rm(temp, { force: true });
    throw error;
  } finally {
    untrack();
  }
  await fsyncDirectory(dirname(path));
}

/** Write everything in `chunks` at the handle's current position. */
export async function writeAll(handle: FileHandle, chunks: Iterable<Uint8Array>): Promise<void> {
  for (const chunk of chunks) {
    let done = 0;
    while (done < chunk.length) {
      const { bytesWritten } = await handle.write(chunk, done, chunk.length - done);
      done += bytesWritten;
    }
  }
}
