/**
 * Storage dtypes. Compute is float32 (float64 exists for gradient checks);
 * bfloat16 and float16 exist only as storage and convert with
 * round-to-nearest-even, keeping NaN and Inf.
 *
 *   bf16ToF32(f32ToBf16(1.00390625)) === 1   // the tie rounds to even
 */

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** float32 -> bfloat16 bits. */
export function f32ToBf16(value: number): number {
  f32[0] = value;
  const bits = u32[0];
  if ((bits & 0x7fffffff) > 0x7f800000) return ((bits >>> 16) | 0x0040) & 0xffff; // quiet NaN, sign kept
  const roundingBias = 0x7fff + ((bits >>> 16) & 1);
  return ((bits + roundingBias) >>> 16) & 0xffff;
}

/** bfloat16 bits -> float32 (exact). */
export function bf16ToF32(bits: number): number {
  u32[0] = bits << 16;
  return f32[0];
}

/** float32 -> float16 bits, subnormals included. */
export function f32ToF16(value: number): number {
  f32[0] = value;
  const bits = u32[0];
  const sign = (bits >>> 16) & 0x8000;
  const exponent = (bits >>> 23) & 0xff;
  const mantissa = bits & 0x7fffff;
  if (exponent === 0xff) return sign | 0x7c00 | (mantissa ? 0x200 | (mantissa >>> 13) : 0);
  const e = exponent - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) return sign | roundSubnormal(mantissa | 0x800000, 14 - e);
  let half = sign | (e << 10) | (mantissa >>> 13);
  const rest = mantissa & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && (half & 1))) half += 1; // a carry may reach Inf: correct
  return half;
}

function roundSubnormal(mantissa24: number, shift: number): number {
  if (shift > 24) return 0;
  const kept = mantissa24 >>> shift;
  const rest = mantissa24 & ((1 << shift) - 1);
  const halfway = 1 << (shift - 1);
  return rest > halfway || (rest === halfway && (kept & 1)) ? kept + 1 : kept;
}

/** float16 bits -> float32 (exact). */
export function f16ToF32(half: number): number {
  const sign = (half & 0x8000) << 16;
  const exponent = (half >>> 10) & 0x1f;
  const mantissa = half & 0x3ff;
  if (exponent === 0) return (sign ? -1 : 1) * mantissa * 2 ** -24;
  u32[0] = exponent === 0x1f ? sign | 0x7f800000 | (mantissa << 13) : sign | ((exponent + 112) << 23) | (mantissa << 13);
  return f32[0];
}

/** Widen a whole bf16 array (as uint16) into float32. */
export function bf16ArrayToF32(src: Uint16Array, dst: Float32Array = new Float32Array(src.length)): Float32Array {
  const out = new Uint32Array(dst.buffer, dst.byteOffset, dst.length);
  for (let i = 0; i < src.length; i++) out[i] = src[i] << 16;
  return dst;
}

/** Narrow a float32 array into bf16 (as uint16). */
export function f32ArrayToBf16(src: Float32Array, dst: Uint16Array = new Uint16Array(src.length)): Uint16Array {
  // NOTE: signed bits stay small integers in V8; a Uint32Array's upper half would be read as doubles.
  const bits = new Int32Array(src.buffer, src.byteOffset, src.length);
  for (let i = 0; i < bits.length; i++) {
    const b = bits[i]; // as f32ToBf16, inlined on the bits
    dst[i] = (b & 0x7fffffff) > 0x7f800000 ? (b >>> 16) | 0x0040 : (b + 0x7fff + ((b >>> 16) & 1)) >>> 16;
  }
  return dst;
}

export function f16ArrayToF32(src: Uint16Array, dst = new Float32Array(src.length)): Float32Array {
  for (let i = 0; i < src.length; i++) dst[i] = f16ToF32(src[i]);
  return dst;
}

export function f32ArrayToF16(src: Float32Array, dst = new Uint16Array(src.length)): Uint16Array {
  for (let i = 0; i < src.length; i++) dst[i] = f32ToF16(src[i]);
  return dst;
}
