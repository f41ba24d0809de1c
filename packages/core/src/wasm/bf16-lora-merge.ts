/**
 * A LoRA delta merged into bf16 weights on WebAssembly SIMD (bf16-lora-merge.wat):
 * B·A is computed a tile at a time in registers and added at once, never
 * stored, with the bits of the float32 merge rounded once,
 *
 *   to[i, j] = f32ToBf16(Math.fround(bf16ToF32(from[i, j]) + Math.fround(Math.fround(factor) * (B·A)[i, j])))
 *
 * where (B·A)[i, j] has onnxruntime's bits: fused multiply-adds over k in order.
 * About 1.2 ns per weight at r = 16, three times onnxruntime's product and the
 * add that follows it.
 *
 *   const kernel = Bf16LoraMerge.create();          // undefined where it cannot run
 *   kernel?.merge(from, to, inp, { a, b, r, factor });
 *
 * The kernel works on a shared WebAssembly memory, its own or one it is given:
 * weights already in that memory (allocate() makes room) merge in place, on
 * any number of threads at once (mergeInPlace); other arrays are copied
 * through it a block at a time (merge).
 *
 * It needs WebAssembly's relaxed multiply-add (behind a V8 flag in Node 20,
 * which this file sets) to be fused, as it is on every CPU with an FMA unit;
 * elsewhere the product would round twice, so create() returns undefined.
 */
import { readFileSync } from 'node:fs';
import { setFlagsFromString } from 'node:v8';

/** W += factor·B·A on rows of a weight [rows, inp]: A [r, inp], B [rows, r]. */
export interface LowRankDelta {
  a: Float32Array;
  b: Float32Array;
  r: number;
  factor: number;
}

const PAGE = 65536;
/** wasm32's whole address space: the most a memory can grow to. */
const MAX_PAGES = 65536;
/** Weights per call when copying: the block's bf16 rows in and out stay in cache. */
const BLOCK = 1 << 16;
const SCRATCH = 128;

interface Exports {
  fusedMultiplyAdd: (a: number, b: number, c: number) => number;
  mergeRows: (from: number, to: number, a: number, b: number, scratch: number, rows: number, stride: number, r: number, factor: number) => void;
}

let compiled: WebAssembly.Module | null | undefined;

/**
 * The kernel's module, or null where it cannot run: relaxed SIMD missing even
 * with V8's flag, or its multiply-add not fused on this CPU.
 */
function kernelModule(): WebAssembly.Module | null {
  if (compiled !== undefined) return compiled;
  const bytes = readFileSync(new URL('./bf16-lora-merge.wasm', import.meta.url));
  if (!WebAssembly.validate(bytes)) setFlagsFromString('--experimental-wasm-relaxed-simd');
  compiled = WebAssembly.validate(bytes) ? new WebAssembly.Module(bytes) : null;
  if (compiled && !isFused(instantiate(compiled, sharedMemory()))) compiled = null;
  return compiled;
}

function instantiate(compiledModule: WebAssembly.Module, memory: WebAssembly.Memory): Exports {
  return new WebAssembly.Instance(compiledModule, { kernel: { memory } }).exports as unknown as Exports;
}

/** (1 + 2⁻¹²)² - (1 + 2⁻¹¹) is 2⁻²⁴ exactly, and 0 if the product is rounded first. */
function isFused(kernel: Exports): boolean {
  return kernel.fusedMultiplyAdd(1 + 2 ** -12, 1 + 2 ** -12, -(1 + 2 ** -11)) === 2 ** -24;
}

/** A shared memory for the kernel, `bytes` long to begin with. */
export function sharedMemory(bytes = 0): WebAssembly.Memory {
  return new WebAssembly.Memory({ initial: Math.max(1, Math.ceil(bytes / PAGE)), maximum: MAX_PAGES, shared: true });
}

/**
 * Room for `bytes` more in a shared memory: the byte offset of a new region at
 * its end, or undefined when the memory cannot grow that far. Any thread may
 * call it: growing is atomic, so each caller gets a region of its own.
 */
export function allocate(memory: WebAssembly.Memory, bytes: number): number | undefined {
  const pages = Math.ceil(bytes / PAGE);
  if (memory.buffer.byteLength / PAGE + pages > MAX_PAGES) return undefined;
  try {
    return memory.grow(pages) * PAGE;
  } catch {
    return undefined; // another thread grew it first, or the system refused
  }
}

export class Bf16LoraMerge {
  readonly #exports: Exports;
  /** This kernel's own region of the memory, for A, B's tiles and copied rows. */
  #scratch = { at: 0, bytes: 0 };

  private constructor(readonly memory: WebAssembly.Memory, exports: Exports) {
    this.#exports = exports;
  }

  /** Whether the kernel runs on this machine (checked once per thread). */
  static available(): boolean {
    return kernelModule() !== null;
  }

  /** The kernel on `memory` (a new one by default), or undefined where it cannot run (available()). */
  static create(memory: WebAssembly.Memory = sharedMemory()): Bf16LoraMerge | undefined {
    const compiledModule = kernelModule();
    return compiledModule ? new Bf16LoraMerge(memory, instantiate(compiledModule, memory)) : undefined;
  }

  /** Whether rows `inp` weights wide merge in place (the kernel reads rows in runs of 8). */
  static fitsInPlace(inp: number): boolean {
    return inp % 8 === 0;
  }

  /**
   * Merges `rows` rows of bf16 weights [rows, inp] that lie in this kernel's
   * memory at byte offsets fromAt and toAt (they may be the same); inp must
   * fit in place. B holds just these rows.
   */
  mergeInPlace(fromAt: number, toAt: number, rows: number, inp: number, delta: LowRankDelta): void {
    checkDelta(rows, inp, delta);
    if (!Bf16LoraMerge.fitsInPlace(inp)) throw new RangeError(`bf16LoraMerge: rows of ${inp} weights do not merge in place (not a multiple of 8)`);
    const tiled = rows - (rows % 4);
    const { r, a, b, factor } = delta;
    const { aAt, bAt } = this.#prepare(a, inp, inp, r, tiled, 0);
    tileRows(b.subarray(0, tiled * r), new Float32Array(this.memory.buffer, bAt, tiled * r), r);
    this.#exports.mergeRows(fromAt, toAt, aAt, bAt, this.#scratch.at, tiled, inp, r, factor);
    if (tiled === rows) return;
    // the last rows, fewer than a tile, through copies
    const rest = (at: number) => new Uint16Array(this.memory.buffer, at + tiled * inp * 2, (rows - tiled) * inp);
    this.merge(rest(fromAt), rest(toAt), inp, { a, b: b.subarray(tiled * r), r, factor });
  }

  /** Merges any bf16 rows [rows, inp] into `to`, copying them through the kernel's memory a block at a time. */
  merge(from: Uint16Array, to: Uint16Array, inp: number, delta: LowRankDelta): void {
    const rows = from.length / inp;
    checkDelta(rows, inp, delta);
    if (to.length !== from.length) throw new RangeError(`bf16LoraMerge: ${from.length} weights in, ${to.length} out`);
    const { r, a, b, factor } = delta;
    const stride = Math.ceil(inp / 8) * 8;
    const blockRows = Math.max(4, Math.floor(BLOCK / stride / 4) * 4);
    const { aAt, bAt, rowsAt } = this.#prepare(a, inp, stride, r, blockRows, 2 * blockRows * stride * 2);
    const toAt = rowsAt + blockRows * stride * 2;
    const memory = this.memory.buffer;
    const [bTiles, fromRows, toRows] = [new Float32Array(memory, bAt, blockRows * r), new Uint16Array(memory, rowsAt, blockRows * stride), new Uint16Array(memory, toAt, blockRows * stride)];
    for (let row = 0; row < rows; row += blockRows) {
      const count = Math.min(blockRows, rows - row);
      tileRows(b.subarray(row * r, (row + count) * r), bTiles, r);
      copyRows(from.subarray(row * inp, (row + count) * inp), inp, fromRows, stride);
      this.#exports.mergeRows(rowsAt, toAt, aAt, bAt, this.#scratch.at, Math.ceil(count / 4) * 4, stride, r, factor);
      copyRows(toRows.subarray(0, count * stride), stride, to.subarray(row * inp, (row + count) * inp), inp);
    }
  }

  /**
   * Lays out this kernel's region: the kernel's scratch, A [r, stride]
   * (padding zero), room for B's tiles of `bRows` rows, then `extra` bytes.
   */
  #prepare(a: Float32Array, inp: number, stride: number, r: number, bRows: number, extra: number): { aAt: number; bAt: number; rowsAt: number } {
    const aAt = this.#reserve(SCRATCH + (r * stride + Math.ceil(bRows / 4) * 4 * r) * 4 + extra) + SCRATCH;
    const bAt = aAt + r * stride * 4;
    copyRows(a, inp, new Float32Array(this.memory.buffer, aAt, r * stride), stride);
    return { aAt, bAt, rowsAt: bAt + Math.ceil(bRows / 4) * 4 * r * 4 };
  }

  /** The start of this kernel's region, at least `bytes` long (a larger one is allocated when needed). */
  #reserve(bytes: number): number {
    if (this.#scratch.bytes < bytes) {
      const at = allocate(this.memory, bytes);
      if (at === undefined) throw new RangeError(`bf16LoraMerge: no room for ${bytes} more bytes in a 4 GiB memory`);
      this.#scratch = { at, bytes: Math.ceil(bytes / PAGE) * PAGE };
    }
    return this.#scratch.at;
  }
}

function checkDelta(rows: number, inp: number, { a, b, r }: LowRankDelta): void {
  if (!Number.isInteger(rows) || a.length !== r * inp || b.length !== rows * r) {
    throw new RangeError(`bf16LoraMerge: A of ${a.length} and B of ${b.length} do not fit [${rows}, ${inp}] at r = ${r}`);
  }
}

/** src's rows into dst's, each row as long as the shorter of the two strides. */
function copyRows<T extends Float32Array | Uint16Array>(src: T, srcStride: number, dst: T, dstStride: number): void {
  if (srcStride === dstStride) return dst.set(src);
  const [rows, width] = [src.length / srcStride, Math.min(srcStride, dstStride)];
  for (let i = 0; i < rows; i++) dst.set(src.subarray(i * srcStride, i * srcStride + width), i * dstStride);
}

/** B [rows, r] as the kernel reads it: tiles of four rows [rows/4, r, 4], the missing rows of the last tile zero. */
function tileRows(b: Float32Array, tiles: Float32Array, r: number): void {
  const rows = b.length / r;
  tiles.fill(0, Math.floor(rows / 4) * 4 * r);
  for (let i = 0; i < rows; i++) {
    const tile = (i >> 2) * r * 4 + (i & 3);
    for (let k = 0; k < r; k++) tiles[tile + k * 4] = b[i * r + k];
  }
}
