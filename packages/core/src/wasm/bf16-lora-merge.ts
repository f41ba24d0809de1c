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
 *   const merge = bf16LoraMerge();   // undefined where the kernel cannot run
 *   merge?.(from, to, inp, { a, b, r, factor });
 *
 * It needs WebAssembly's relaxed multiply-add (behind a V8 flag in Node 20,
 * which this file sets) to be fused, as it is on every CPU with an FMA unit;
 * elsewhere the product would round twice, so bf16LoraMerge returns undefined.
 * Each thread instantiates its own kernel.
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

export type Bf16LoraMerge = (from: Uint16Array, to: Uint16Array, inp: number, delta: LowRankDelta) => void;

/** Weights per kernel call: the block's bf16 rows in and out stay in cache. */
const BLOCK = 1 << 16;
const PAGE = 65536;
const SCRATCH = 128;

interface Exports {
  memory: WebAssembly.Memory;
  fusedMultiplyAdd: (a: number, b: number, c: number) => number;
  mergeRows: (from: number, to: number, a: number, b: number, scratch: number, rows: number, stride: number, r: number, factor: number) => void;
}

let kernel: Bf16LoraMerge | null | undefined;

export function bf16LoraMerge(): Bf16LoraMerge | undefined {
  kernel ??= instantiate();
  return kernel ?? undefined;
}

function instantiate(): Bf16LoraMerge | null {
  const bytes = readFileSync(new URL('./bf16-lora-merge.wasm', import.meta.url));
  if (!WebAssembly.validate(bytes)) setFlagsFromString('--experimental-wasm-relaxed-simd');
  if (!WebAssembly.validate(bytes)) return null;
  const exports = new WebAssembly.Instance(new WebAssembly.Module(bytes)).exports as unknown as Exports;
  // (1 + 2⁻¹²)² - (1 + 2⁻¹¹) is 2⁻²⁴ exactly, and 0 if the product is rounded first
  const fused = exports.fusedMultiplyAdd(1 + 2 ** -12, 1 + 2 ** -12, -(1 + 2 ** -11)) === 2 ** -24;
  return fused ? (from, to, inp, delta) => mergeBlocks(exports, from, to, inp, delta) : null;
}

/**
 * The kernel works in its own memory on rows padded to a multiple of 8 and
 * blocks of a multiple of 4 rows; the padding's results are not copied out.
 */
function mergeBlocks(kernel: Exports, from: Uint16Array, to: Uint16Array, inp: number, { a, b, r, factor }: LowRankDelta): void {
  const rows = from.length / inp;
  if (to.length !== from.length || a.length !== r * inp || b.length !== rows * r) {
    throw new RangeError(`bf16LoraMerge: weights of ${from.length} and ${to.length}, A of ${a.length} and B of ${b.length} do not fit [${rows}, ${inp}] at r = ${r}`);
  }
  const stride = Math.ceil(inp / 8) * 8;
  const blockRows = Math.max(4, Math.floor(BLOCK / stride / 4) * 4);
  // byte offsets in the kernel's memory: scratch at 0, A [r, stride], B's tiles [blockRows/4, r, 4], from and to [blockRows, stride]
  const aAt = SCRATCH;
  const bAt = aAt + r * stride * 4;
  const fromAt = bAt + blockRows * r * 4;
  const toAt = fromAt + blockRows * stride * 2;
  const end = toAt + blockRows * stride * 2;
  if (kernel.memory.buffer.byteLength < end) kernel.memory.grow(Math.ceil((end - kernel.memory.buffer.byteLength) / PAGE));
  const memory = kernel.memory.buffer;
  copyRows(a, inp, new Float32Array(memory, aAt, r * stride), stride);
  const [bTiles, fromRows, toRows] = [new Float32Array(memory, bAt, blockRows * r), new Uint16Array(memory, fromAt, blockRows * stride), new Uint16Array(memory, toAt, blockRows * stride)];
  for (let row = 0; row < rows; row += blockRows) {
    const count = Math.min(blockRows, rows - row);
    tileRows(b.subarray(row * r, (row + count) * r), bTiles, r);
    copyRows(from.subarray(row * inp, (row + count) * inp), inp, fromRows, stride);
    kernel.mergeRows(fromAt, toAt, aAt, bAt, 0, Math.ceil(count / 4) * 4, stride, r, factor);
    copyRows(toRows.subarray(0, count * stride), stride, to.subarray(row * inp, (row + count) * inp), inp);
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
