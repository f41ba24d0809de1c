/**
 * Reading a safetensors file lazily: open() reads and validates the header
 * only; each tensor is read by offset when asked for, so a model folder opens
 * without reading it all and files above 2 GiB work.
 *
 *   const file = await SafetensorsFile.open('model.safetensors');
 *   const w = await file.read('model.embed_tokens.weight'); // bf16 -> float32
 *   await file.close();
 */
import { open, stat, type FileHandle } from 'node:fs/promises';
import type { Tensor } from '../tensor.ts';
import { FileFormatError, quote } from './errors.ts';
import { bytesToTensor, isComputable } from './dtypes.ts';
import { headerLength, parseHeader, type SafetensorsHeader, type TensorEntry } from './safetensors-header.ts';
import { readFully } from './read-fully.ts';

export class SafetensorsFile {
  readonly #handle: FileHandle;
  readonly #header: SafetensorsHeader;
  readonly #size: number;
  readonly #mtimeMs: number;

  private constructor(readonly path: string, handle: FileHandle, header: SafetensorsHeader, size: number, mtimeMs: number) {
    this.#handle = handle;
    this.#header = header;
    this.#size = size;
    this.#mtimeMs = mtimeMs;
  }

  static async open(path: string): Promise<SafetensorsFile> {
    // NOTE: checked before open(), which would block forever on a FIFO.
    if (!(await stat(path)).isFile()) throw new FileFormatError('NotAFile', path, 'not a regular file');
    const handle = await open(path, 'r');
    try {
      const stat = await handle.stat();
      const first8 = new Uint8Array(8);
      if (stat.size >= 8) await readFully(handle, first8, 0, path);
      const n = headerLength(first8, stat.size, path);
      const headerBytes = new Uint8Array(n);
      await readFully(handle, headerBytes, 8, path);
      return new SafetensorsFile(path, handle, parseHeader(headerBytes, stat.size, path), stat.size, stat.mtimeMs);
    } catch (error) {
      await handle.close();
      throw error;
    }
  }

  get metadata(): ReadonlyMap<string, string> | null {
    return this.#header.metadata;
  }

  names(): string[] {
    return [...this.#header.tensors.keys()];
  }

  has(name: string): boolean {
    return this.#header.tensors.has(name);
  }

  entry(name: string): TensorEntry {
    const entry = this.#header.tensors.get(name);
    if (entry === undefined) throw new FileFormatError('MissingTensor', this.path, `no tensor ${quote(name)}`);
    return entry;
  }

  /** The tensor's raw little-endian bytes. */
  /** The tensor's stored bytes, in a new array or at the start of `into` (which may be shared memory). */
  async readBytes(name: string, into?: Uint8Array): Promise<Uint8Array> {
    const entry = this.entry(name);
    await this.#checkUnchanged();
    const length = entry.end - entry.begin;
    if (into && into.length < length) throw new RangeError(`readBytes(${quote(name)}): ${length} bytes do not fit a buffer of ${into.length}`);
    const bytes = into ? into.subarray(0, length) : new Uint8Array(length);
    await readFully(this.#handle, bytes, this.#header.dataStart + entry.begin, this.path);
    return bytes;
  }

  /**
   * A tensor's bytes in pieces of at most `chunkBytes`, to copy a tensor larger
   * than one would hold. Each piece is valid until the next is asked for.
   */
  async *readChunks(name: string, chunkBytes = 16 * 2 ** 20): AsyncGenerator<Uint8Array> {
    const entry = this.entry(name);
    await this.#checkUnchanged();
    const buffer = new Uint8Array(Math.min(chunkBytes, entry.end - entry.begin));
    for (let at = entry.begin; at < entry.end; at += buffer.length) {
      const chunk = buffer.subarray(0, Math.min(buffer.length, entry.end - at));
      await readFully(this.#handle, chunk, this.#header.dataStart + at, this.path);
      yield chunk;
    }
  }

  async #checkUnchanged(): Promise<void> {
    const stat = await this.#handle.stat();
    if (stat.size !== this.#size || stat.mtimeMs !== this.#mtimeMs) {
      throw new FileFormatError('FileChanged', this.path, 'changed on disk after it was opened');
    }
  }

  /** The tensor as float32 (floats), float64 (F64), int32 or int64. */
  async read(name: string): Promise<Tensor> {
    const entry = this.entry(name);
    if (!isComputable(entry.dtype)) {
      throw new FileFormatError('UnsupportedDtype', this.path, `tensor ${quote(name)} is ${entry.dtype}, which lorakit cannot compute with`);
    }
    return bytesToTensor(await this.readBytes(name), entry.dtype, entry.shape);
  }

  async close(): Promise<void> {
    await this.#handle.close();
  }
}
