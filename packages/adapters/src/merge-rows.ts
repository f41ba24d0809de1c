/**
 * The arithmetic of a merge, and its one owner, on plain arrays so the main
 * thread and the merge workers share it:  W[rows] += Σ factorᵢ · Bᵢ[rows] · Aᵢ
 * in float32 as PyTorch computes it: each scaled product rounded, then the sum.
 * LoraLinear's merge and unmerge, DoRA's row norms, the streamed merge and the
 * bf16 workers all go through addScaled and productRows (the WebAssembly
 * kernel computes the same bits, which its tests check).
 */
import { Tensor, noGrad } from '@lorakit/core';
import { matmul } from '@lorakit/core/ops';
import { bf16ArrayToF32, f32ArrayToBf16 } from '@lorakit/core/io';
import type { LowRankDelta } from '@lorakit/core/wasm';

/** Elements per block of rows: large enough that each B·A call is a real matmul, small enough to stay in cache. */
const BLOCK = 1 << 17;

/** w += f32(factor·d), in float32 (a sum of two float32 values rounds the same in float64 first). */
export function addScaled(w: Float32Array, d: Float32Array, factor: number): void {
  const f = Math.fround(factor);
  for (let i = 0; i < w.length; i++) w[i] += Math.fround(f * d[i]);
}

/** One adapter's factors on one layer: lora_A [r, in], lora_B [out, r] and factor (wᵢ·sᵢ). */
export function lowRank(a: Tensor, b: Tensor, factor: number): LowRankDelta {
  return { a: a.values as Float32Array, b: b.values as Float32Array, r: a.shape[0], factor };
}

/** w += factor·B·A for a whole dense [out, in] float32 weight, in place; returns w. */
export function addLowRank(w: Float32Array, delta: LowRankDelta): Float32Array {
  addScaled(w, productRows(delta, 0, delta.b.length / delta.r), delta.factor);
  return w;
}

/**
 * Rows [from, to) of B·A, [to - from, in] float32, the same bits however the
 * rows are split into blocks.
 * NOTE: onnxruntime computes a one-row product (a GEMV) in another order than
 * the rows of a larger one; a single row is padded to two so it does not.
 */
export function productRows({ a, b, r }: LowRankDelta, from: number, to: number): Float32Array {
  const inp = a.length / r;
  const single = to - from === 1;
  const rows = single ? new Float32Array(2 * r) : b.subarray(from * r, to * r);
  if (single) rows.set(b.subarray(from * r, to * r));
  const product = noGrad(() => matmul(new Tensor(rows, [rows.length / r, r]), new Tensor(a, [r, inp]))).values as Float32Array;
  return single ? product.subarray(0, inp) : product;
}

/**
 * merged = bf16(f32(source) + Σ factor·B·A) for a [rows, in] block in float32
 * sub-blocks that stay in cache, never holding the block whole: for several
 * adapters, or where the fused kernel (Bf16LoraMerge) cannot run. Same bits.
 */
export function mergeBf16RowsInFloat32(source: Uint16Array, merged: Uint16Array, inp: number, deltas: LowRankDelta[]): void {
  const rows = source.length / inp;
  const rowsPerBlock = Math.max(1, Math.floor(BLOCK / inp));
  const block = new Float32Array(Math.min(rows, rowsPerBlock) * inp);
  for (let row = 0; row < rows; row += rowsPerBlock) {
    const [start, end] = [row * inp, Math.min(row + rowsPerBlock, rows) * inp];
    const w = bf16ArrayToF32(source.subarray(start, end), block.subarray(0, end - start));
    for (const delta of deltas) addScaled(w, productRows(delta, row, end / inp), delta.factor);
    f32ArrayToBf16(w, merged.subarray(start, end));
  }
}
