/**
 * Appending a large file straight to the disk (O_DIRECT), past the page cache.
 * On this project's machine the kernel writes buffered data back at a half to
 * a fifth of the speed the disk takes direct writes (benchmarks/README.md).
 *
 *   const file = await DirectWriter.create(path);     // like open(path, 'wx')
 *   await file.append(bytes); ...
 *   await file.close();                               // all on disk
 *
 * O_DIRECT wants memory, offsets and lengths aligned to the disk's blocks, so
 * bytes are staged in page-aligned buffers (WebAssembly memories: JavaScript
 * cannot ask where an ArrayBuffer lies, but a memory starts on a page) and
 * written 16 MiB at a time, two writes in flight while the next is staged. The
 * last block is padded and the file truncated to its length. A filesystem
 * that refuses O_DIRECT (tmpfs) gets the same writes through the page cache.
 */
import { constants } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';

const CHUNK = 16 * 2 ** 20;
/** Writes queued at the disk at once: the next is there the moment one completes, however busy the CPU is. */
const IN_FLIGHT = 2;
const BLOCK = 4096;
const PAGE = 65536;

/** A page-aligned buffer of `bytes` (a multiple of 64 KiB). */
function alignedBuffer(bytes: number): Uint8Array {
  return new Uint8Array(new WebAssembly.Memory({ initial: bytes / PAGE, maximum: bytes / PAGE }).buffer);
}

export class DirectWriter {
  readonly #buffers = Array.from({ length: IN_FLIGHT + 1 }, () => alignedBuffer(CHUNK));
  #turn = 0;
  #staged = 0;
  #written = 0;
  #appended = 0;
  /** The writes in flight, oldest first. */
  readonly #writes: Promise<void>[] = [];

  private constructor(readonly path: string, readonly handle: FileHandle) {}

  /** A new file (an existing one is an EEXIST error), opened for direct writes where the filesystem allows. */
  static async create(path: string, mode = 0o644): Promise<DirectWriter> {
    const flags = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL;
    try {
      return new DirectWriter(path, await open(path, flags | constants.O_DIRECT, mode));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EINVAL') throw error;
      return new DirectWriter(path, await open(path, flags, mode));
    }
  }

  /** Bytes appended so far: the file's length once closed. */
  get length(): number {
    return this.#appended;
  }

  async append(bytes: Uint8Array): Promise<void> {
    this.#appended += bytes.length;
    for (let from = 0; from < bytes.length; ) {
      const n = Math.min(CHUNK - this.#staged, bytes.length - from);
      this.#buffers[this.#turn].set(bytes.subarray(from, from + n), this.#staged);
      [this.#staged, from] = [this.#staged + n, from + n];
      if (this.#staged === CHUNK) await this.#flush(CHUNK);
    }
  }

  /** Writes what is staged, truncates the padding of the last block and syncs; closes the file, also on failure. */
  async close(): Promise<void> {
    try {
      const padded = Math.ceil(this.#staged / BLOCK) * BLOCK;
      this.#buffers[this.#turn].fill(0, this.#staged, padded);
      await this.#flush(padded);
      await Promise.all(this.#writes);
      await this.handle.truncate(this.#appended);
      await this.handle.sync();
    } finally {
      await this.handle.close();
    }
  }

  /** Closes without finishing the file (after a failure). */
  async abandon(): Promise<void> {
    await Promise.allSettled(this.#writes);
    await this.handle.close();
  }

  /** Starts writing the staged buffer (once a write in flight has finished, if there are IN_FLIGHT) and stages into the next one. */
  async #flush(length: number): Promise<void> {
    if (this.#writes.length === IN_FLIGHT) await this.#writes.shift();
    const write = this.#writeFully(this.#buffers[this.#turn].subarray(0, length), this.#written);
    write.catch(() => {}); // awaited by a later flush or close()
    this.#writes.push(write);
    [this.#written, this.#staged, this.#turn] = [this.#written + length, 0, (this.#turn + 1) % this.#buffers.length];
  }

  async #writeFully(bytes: Uint8Array, position: number): Promise<void> {
    for (let done = 0; done < bytes.length; ) {
      const { bytesWritten } = await this.handle.write(bytes, done, bytes.length - done, position + done);
      done += bytesWritten;
    }
  }
}
