/** Positioned reads that loop over short reads, in chunks, so no single Buffer exceeds Node's limits. */
import type { FileHandle } from 'node:fs/promises';

const CHUNK = 256 * 1024 * 1024;

export async function readFully(handle: FileHandle, target: Uint8Array, position: number, file: string): Promise<void> {
  let done = 0;
  while (done < target.length) {
    const length = Math.min(CHUNK, target.length - done);
    const { bytesRead } = await handle.read(target, done, length, position + done);
    if (bytesRead === 0) throw new Error(`${file}: unexpected end of file at byte ${position + done}`);
    done += bytesRead;
  }
}
