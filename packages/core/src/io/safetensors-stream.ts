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
import { SAFETENSORS_DTYPES, type SafetensorsDtype } from './dtypes.ts';
import { encodeHeader } from './safetensors-writer.ts';
import { DirectWriter } from './direct-writer.ts';
import { numel } from '../shape.ts';

export interface PlannedTensor {
  name: string;
  dtype: SafetensorsDtype;
  shape: readonly number[];
}

export class SafetensorsStream {
  #next = 0;

  private constructor(readonly path: string, readonly file: DirectWriter, readonly entries: readonly PlannedTensor[]) {}

  static async create(path: string, entries: readonly PlannedTensor[], metadata: Record<string, string> = { format: 'pt' }): Promise<SafetensorsStream> {
    const header = encodeHeader(entries.map((e) => [e.name, { ...e, byteLength: numel(e.shape) * SAFETENSORS_DTYPES[e.dtype] }]), metadata);
    const file = await DirectWriter.create(path);
    await file.append(header);
    return new SafetensorsStream(path, file, entries);
  }

  /** The bytes of the next planned tensor, which must be `name`: whole, or in pieces (each may be reused once appended). */
  async write(name: string, bytes: Uint8Array | AsyncIterable<Uint8Array>): Promise<void> {
    const entry = this.entries[this.#next];
    const expected = entry ? numel(entry.shape) * SAFETENSORS_DTYPES[entry.dtype] : -1;
    const mismatch = (got: string) => new Error(`${this.path}: expected ${entry?.name ?? 'no more tensors'} (${expected} bytes), got ${name} (${got} bytes)`);
    if (entry?.name !== name || (bytes instanceof Uint8Array && bytes.length !== expected)) throw mismatch(bytes instanceof Uint8Array ? `${bytes.length}` : 'some');
    let written = 0;
    try {
      for await (const piece of bytes instanceof Uint8Array ? [bytes] : bytes) {
        written += piece.length;
        if (written > expected) throw mismatch(`more than ${expected}`);
        await this.#append(name, piece);
      }
      if (written !== expected) throw mismatch(`${written}`);
    } catch (error) {
      await this.file.abandon();
      throw error;
    }
    this.#next++;
  }

  async #append(name: string, bytes: Uint8Array): Promise<void> {
    try {
      await this.file.append(bytes);
    } catch (error) {
      throw this.#failure(`could not write ${name}`, error as NodeJS.ErrnoException);
    }
  }

  async close(): Promise<void> {
    if (this.#next !== this.entries.length) {
      await this.file.abandon();
      throw new Error(`${this.path}: ${this.entries.length - this.#next} planned tensors were not written`);
    }
    try {
      await this.file.close();
    } catch (error) {
      throw this.#failure('could not write the end of the file', error as NodeJS.ErrnoException);
    }
  }

  #failure(what: string, error: NodeJS.ErrnoException): Error {
    return Object.assign(new Error(`${this.path}: ${what}: ${error.code === 'ENOSPC' ? 'the disk is full' : error.message}`), { code: error.code });
  }
}
