/**
 * Temporary outputs: every file and folder lorakit writes is built under a
 * temporary name beside its destination, `.<name>.tmp-<pid>-<8 hex>`, and
 * renamed into place when whole. This module owns that name and knows which
 * temporaries this process has in progress, so that
 *
 * - a command stopped by a signal removes them before it exits
 *   (`removeTemporariesNow`, synchronous: it runs in the signal's handler);
 * - a later run into the same destination removes what a killed run left,
 *   proven its own by the name and a process id that no longer runs
 *   (`removeStaleTemporaries`).
 *
 *   const temp = temporaryPath('out/merged');   // out/.merged.tmp-4242-9f3a01bc
 *   const done = track(temp);                    // ... write, rename ...; done()
 */
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { readdir, rm } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';

const inProgress = new Set<string>();

export function temporaryPath(path: string): string {
  return join(dirname(path), `.${basename(path)}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
}

/** Note `temporary` as being written by this process; the returned function forgets it. */
export function track(temporary: string): () => void {
  inProgress.add(temporary);
  return () => inProgress.delete(temporary);
}

/** Remove every temporary this process has in progress, at once; returns their paths. */
export function removeTemporariesNow(): string[] {
  const removed = [...inProgress];
  for (const path of removed) rmSync(path, { recursive: true, force: true });
  inProgress.clear();
  return removed;
}

/** The process id in a temporary's name when it is one of ours for `name`, else null. */
function ownerOf(entry: string, name: string): number | null {
  const prefix = `.${name}.tmp-`;
  if (!entry.startsWith(prefix)) return null;
  const match = /^(\d+)-[0-9a-f]{8}$/.exec(entry.slice(prefix.length));
  return match === null ? null : Number(match[1]);
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'; // it exists, owned by someone else
  }
}

/**
 * Remove the temporaries an interrupted run left beside `destination`: only
 * names of our pattern for that destination whose process is gone (never this
 * process's, never a running one's). Returns the paths removed.
 */
export async function removeStaleTemporaries(destination: string): Promise<string[]> {
  const path = resolve(destination);
  const entries = await readdir(dirname(path)).catch(() => [] as string[]);
  const stale = entries.filter((entry) => {
    const pid = ownerOf(entry, basename(path));
    return pid !== null && pid !== process.pid && !isRunning(pid);
  });
  const removed = stale.map((entry) => join(dirname(path), entry));
  for (const temporary of removed) await rm(temporary, { recursive: true, force: true });
  return removed;
}
