/**
 * Rotary position embedding in the rotate-half layout that Hugging Face uses.
 *
 *   x [B, H, T, D], cos/sin [B or 1, 1, T, D]
 *   rope(x) = x · cos + rotateHalf(x) · sin,  rotateHalf([x1, x2]) = [−x2, x1]
 */
import type { Tensor } from '../tensor.ts';
import { concat, split } from './layout.ts';

export function rotateHalf(x: Tensor): Tensor {
  const half = x.shape[x.ndim - 1] / 2;
  const [x1, x2] = split(x, [half, half], -1);
  return concat([x2.neg(), x1], -1);
}

export function applyRotary(x: Tensor, cos: Tensor, sin: Tensor): Tensor {
  return x.mul(cos).add(rotateHalf(x).mul(sin));
}

/**
 * cos and sin tables [1, 1, T, D] for the given positions and inverse
 * frequencies (D/2 of them): angle[t, i] = position[t] · invFreq[i],
 * duplicated across the two halves; `scale` multiplies both (llama3/yarn attention factor).
 */
export function rotaryTables(positions: readonly number[], invFreq: Float64Array, scale = 1): { cos: Float32Array; sin: Float32Array } {
  const half = invFreq.length;
  const dim = 2 * half;
  const cos = new Float32Array(positions.length * dim);
  const sin = new Float32Array(positions.length * dim);
  positions.forEach((p, t) => {
    for (let i = 0; i < half; i++) {
      // NOTE: float32 angle, as transformers computes inv_freq @ position in float32.
      const angle = Math.fround(Math.fround(invFreq[i]) * p);
      const c = Math.cos(angle) * scale;
      const s = Math.sin(angle) * scale;
      cos[t * dim + i] = cos[t * dim + half + i] = c;
      sin[t * dim + i] = sin[t * dim + half + i] = s;
    }
  });
  return { cos, sin };
}
