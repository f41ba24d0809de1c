/**
 * Double quantization of the 4-bit absmax values (QLoRA's second level), as
 * bitsandbytes does it: subtract their mean (the offset), quantize the rest in
 * blocks of 256 with the 8-bit dynamic map (by bitsandbytes' own switch
 * points, which are close to but not the midpoints), keeping one float32
 * absmax per block of 256.
 *
 *   absmax[i] ≈ dynamic[q[i]] · nestedAbsmax[i / 256] + offset
 */
import { DYNAMIC, DYNAMIC_SWITCH } from './codebooks.ts';

const f = Math.fround;

export interface DoubleQuantized {
  quantized: Uint8Array; // one byte per absmax value
  nestedAbsmax: Float32Array; // one per block of 256
  offset: number;
  nestedBlockSize: number;
  /** The 256-entry code the bytes index (a checkpoint's nested_quant_map; default the dynamic map). */
  nestedCode?: Float32Array;
}

/** The code bitsandbytes assigns to a normalized value: how many of its switch points lie at or below it. */
function codeFor(x: number): number {
  let lo = 0;
  let hi = DYNAMIC_SWITCH.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (DYNAMIC_SWITCH[mid] <= x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * The float32 mean as PyTorch computes it on this machine: 64 running sums
 * (4 vectors of 16 lanes) over whole chunks, halved pairwise, then the rest.
 * NOTE: exact for the few thousand values of a layer's absmax; very long
 * arrays go through PyTorch's cascade and may differ by an ulp.
 */
export function torchMean(values: Float32Array): number {
  const lanes = new Float32Array(64);
  let i = 0;
  for (; i + 64 <= values.length; i += 64) for (let k = 0; k < 64; k++) lanes[k] = f(lanes[k] + values[i + k]);
  let rest = 0;
  for (; i < values.length; i++) rest = f(rest + values[i]);
  for (let width = 32; width >= 1; width /= 2) for (let k = 0; k < width; k++) lanes[k] = f(lanes[k] + lanes[k + width]);
  return f(f(lanes[0] + rest) / values.length);
}

export function doubleQuantize(absmax: Float32Array, nestedBlockSize = 256): DoubleQuantized {
  const offset = torchMean(absmax);
  const blocks = Math.ceil(absmax.length / nestedBlockSize);
  const nestedAbsmax = new Float32Array(blocks);
  const quantized = new Uint8Array(absmax.length);
  for (let b = 0; b < blocks; b++) {
    const start = b * nestedBlockSize;
    const end = Math.min(absmax.length, start + nestedBlockSize);
    let max = 0;
    for (let i = start; i < end; i++) max = Math.max(max, Math.abs(f(absmax[i] - offset)));
    nestedAbsmax[b] = max;
    for (let i = start; i < end; i++) quantized[i] = codeFor(f(f(absmax[i] - offset) / max));
  }
  return { quantized, nestedAbsmax, offset, nestedBlockSize };
}

/** The float32 absmax values back: dynamic[q] · nestedAbsmax + offset. */
export function expandAbsmax({ quantized, nestedAbsmax, offset, nestedBlockSize, nestedCode = DYNAMIC }: DoubleQuantized, out = new Float32Array(quantized.length)): Float32Array {
  for (let i = 0; i < quantized.length; i++) out[i] = f(f(nestedCode[quantized[i]] * nestedAbsmax[Math.floor(i / nestedBlockSize)]) + offset);
  return out;
}
