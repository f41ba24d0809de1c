/**
 * LLM.int8()'s weight format, as bitsandbytes' Linear8bitLt stores it: each row of W [out, in] scaled by its
 * own absolute maximum into int8.
 *
 *   SCB[o] = max_i |W[o, i]|                  (the weight taken to float16 first, as bitsandbytes does)
 *   CB[o, i] = round(W[o, i] · (127 / SCB[o]))  (float32, ties to even, as torch.round)
 * where 127 / SCB is computed as PyTorch computes a number divided by a tensor: 127 · (1 / SCB), each step
 * rounded to float32 (so 0.2128906 in a row of absmax 0.4257813 gives 63.499996 -> 63, not 63.5 -> 64).
 *   dequant(W)[o, i] = CB[o, i] · (SCB[o] · (1/127))
 * A row of zeros keeps SCB 0 and codes 0.
 */
import { f16ToF32, f32ToF16 } from '../dtype.ts';

export interface Int8Rows {
  codes: Int8Array; // [out, in], CB
  absmax: Float32Array; // [out], SCB
}

const fround = Math.fround;

/** Round half to even, as torch.round. */
function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return r - x === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

export function quantizeInt8Rows(weight: Float32Array, rows: number, cols: number): Int8Rows {
  const codes = new Int8Array(rows * cols);
  const absmax = new Float32Array(rows);
  const half = new Float32Array(cols);
  for (let o = 0; o < rows; o++) {
    let max = 0;
    for (let i = 0; i < cols; i++) {
      half[i] = f16ToF32(f32ToF16(weight[o * cols + i]));
      max = Math.max(max, Math.abs(half[i]));
    }
    absmax[o] = max;
    if (max === 0) continue;
    const factor = fround(127 * fround(1 / max));
    for (let i = 0; i < cols; i++) codes[o * cols + i] = roundHalfEven(fround(half[i] * factor));
  }
  return { codes, absmax };
}

/** The per-row factor that turns codes back into weights: SCB · (1/127) in float32. */
export function int8RowScales(absmax: Float32Array): Float32Array {
  return absmax.map((m) => fround(m * fround(1 / 127)));
}

export function dequantizeInt8Rows({ codes, absmax }: Int8Rows): Float32Array {
  const cols = codes.length / absmax.length;
  const scales = int8RowScales(absmax);
  const out = new Float32Array(codes.length);
  for (let i = 0; i < codes.length; i++) out[i] = codes[i] * scales[Math.floor(i / cols)];
  return out;
}
