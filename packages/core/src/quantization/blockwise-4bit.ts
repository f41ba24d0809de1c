/**
 * bitsandbytes' 4-bit blockwise quantization (NF4 and FP4), bit for bit.
 *
 *   the weight is flattened row-major and cut into blocks of `blockSize` (the last may be shorter);
 *   absmax[b] = max |x| in block b;  x / absmax -> the nearest code (ties to the lower code);
 *   two codes per byte, the first element in the high nibble.
 *
 *   const { packed, absmax } = quantize4bit(weight.values, 'nf4', 64);
 *   dequantize4bit(packed, absmax, 'nf4', 64, weight.numel)  // ≈ weight
 *
 * NOTE: as in bitsandbytes' CPU path, full blocks are scaled by the reciprocal
 * of their absmax and the tail block is divided by its absmax (clamped to
 * 1e-38, which is also what the tail stores when it is all zero).
 */
import { codebook, type QuantType } from './codebooks.ts';

const f = Math.fround;
const TINY = f(1e-38);

/** Midpoints between sorted codes, and the code index of each sorted position. */
function bounds(type: QuantType): { midpoints: Float32Array; order: number[] } {
  const code = codebook(type);
  const order = [...code.keys()].sort((a, b) => code[a] - code[b] || a - b);
  const midpoints = Float32Array.from(order.slice(0, -1), (k, i) => f(f(code[k] + code[order[i + 1]]) / 2));
  return { midpoints, order };
}

const BOUNDS = { nf4: bounds('nf4'), fp4: bounds('fp4') };

/** torch.bucketize (right=False): how many midpoints lie strictly below x. */
function bucket(midpoints: Float32Array, x: number): number {
  let lo = 0;
  let hi = midpoints.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (midpoints[mid] < x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

export interface Quantized4bit {
  packed: Uint8Array; // ceil(n / 2) bytes
  absmax: Float32Array; // one per block
}

export function quantize4bit(values: Float32Array, type: QuantType, blockSize: number): Quantized4bit {
  const n = values.length;
  const blocks = Math.ceil(n / blockSize);
  const full = Math.floor(n / blockSize);
  const absmax = new Float32Array(blocks);
  const packed = new Uint8Array(Math.ceil(n / 2));
  const { midpoints, order } = BOUNDS[type];
  const codeOf = (scaled: number) => order[bucket(midpoints, scaled)];
  let pending = -1;
  const emit = (i: number, q: number) => {
    if (i % 2 === 0) pending = q;
    else packed[i >> 1] = (pending << 4) | q;
  };
  for (let b = 0; b < blocks; b++) {
    const start = b * blockSize;
    const end = Math.min(n, start + blockSize);
    let max = 0;
    for (let i = start; i < end; i++) max = Math.max(max, Math.abs(values[i]));
    const isTail = b >= full;
    absmax[b] = isTail ? Math.max(max, TINY) : max;
    const inverse = f(1 / Math.max(max, TINY));
    const divisor = Math.max(max, TINY);
    for (let i = start; i < end; i++) {
      const scaled = isTail ? f(values[i] / divisor) : f(values[i] * inverse);
      emit(i, codeOf(Math.min(1, Math.max(-1, scaled))));
    }
  }
  if (n % 2 === 1) packed[n >> 1] = (pending << 4) | codeOf(0);
  return { packed, absmax };
}

export function dequantize4bit(packed: Uint8Array, absmax: Float32Array, type: QuantType, blockSize: number, n: number, out = new Float32Array(n)): Float32Array {
  const code = codebook(type);
  for (let i = 0; i < n; i++) {
    const byte = packed[i >> 1];
    out[i] = f(code[i % 2 === 0 ? byte >> 4 : byte & 0x0f] * absmax[Math.floor(i / blockSize)]);
  }
  return out;
}
