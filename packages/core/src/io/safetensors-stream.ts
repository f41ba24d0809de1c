/**
 * Writing a safetensors file tensor by tensor, for outputs too large to hold:
 * the header is written first from names, dtypes and shapes known in advance,
 * then each tensor's bytes in that order. Not atomic by itself: write into a
 * temporary folder and rename it (as the streaming merge does).
 *
 *   const w = await SafetensorsStream.create(path, entries);
 *   for (const e of entries) await w.write(e.name, bytesOf(e));
 *   await w.close();
 */
import { open, type FileHandle } from 'node:fs/promises';
import { SAFETENSORS_DTYPES, type SafetensorsDtype } from './dtypes.ts';
import { encodeHeader } from './safetensors-writer.ts';
import { writeAll } from './atomic.ts';
import { numel } from '../shape.ts';

export interface PlannedTensor {
  name: string;
  dtype: SafetensorsDtype;
  shape: readonly number[];
}

/**
 * Bytes written between flushes to disk. Left alone, the kernel keeps up to a
 * tenth of memory dirty and writes it only at close()'s fsync, after the
 * caller's work; flushing as we go lets the disk work while the caller
 * computes the next tensor (callers keep one write in flight).
 */
const FLUSH_EVERY = 64 * 2 ** 20;

export class SafetensorsStream {
  #next = 0;
  #unflushed = 0;
  #flushing: Promise<void> = Promise.resolve();

  private constructor(readonly path: string, readonly handle: FileHandle, readonly entries: readonly PlannedTensor[]) {}

  static async create(path: string, entries: readonly PlannedTensor[], metadata: Record<string, string> = { format: 'pt' }): Promise<SafetensorsStream> {
    const header = encodeHeader(entries.map((e) => [e.name, { ...e, byteLength: numel(e.shape) * SAFETENSORS_DTYPES[e.dtype] }]), metadata);
    const handle = await open(path, 'wx', 0o644);
    await writeAll(handle, [header]);
    return new SafetensorsStream(path, handle, entries);
  }

  /** The bytes of the next planned tensor, which must be `name`. */
  async write(name: string, bytes: Uint8Array): Promise<void> {
    const entry = this.entries[this.#next];
    const expected = entry ? numel(entry.shape) * SAFETENSORS_DTYPES[entry.dtype] : -1;
    if (entry?.name !== name || bytes.length !== expected) throw new Error(`${this.path}: expected ${entry?.name ?? 'no more tensors'} (${expected} bytes), got ${name} (${bytes.length} bytes)`);
    try {
      await writeAll(this.handle, [bytes]);
      this.#unflushed += bytes.length;
      if (this.#unflushed >= FLUSH_EVERY) {
        this.#unflushed = 0;
        await this.#flushing; // one flush at a time, in the background of the writes
        this.#flushing = this.handle.datasync();
        this.#flushing.catch(() => {}); // awaited by the next flush or close()
      }
    } catch (error) {
      await this.handle.close();
      throw this.#failure(`could not write ${name}`, error as NodeJS.ErrnoException);
    }
    this.#next++;
  }

  async close(): Promise<void> {
    if (this.#next !== this.entries.length) {
      await this.handle.close();
      throw new Error(`${this.path}: ${this.entries.length - this.#next} planned tensors were not written`);
    }
    try {
      await this.#flushing;
      await this.handle.sync();
    } catch (error) {
      throw this.#failure('could not flush to disk', error as NodeJS.ErrnoException);
    } finally {
      await this.handle.close();
    }
  }

  #failure(what: string, error: NodeJS.ErrnoException): Error {
    return Object.assign(new Error(`${this.path}: ${what}: ${error.code === 'ENOSPC' ? 'the disk is full' : error.message}`), { code: error.code });
  }
}
