/**
 * Normalizations, composed from primitive ops (their backward comes free).
 *
 *   rmsNorm(x, w)       = w · x / sqrt(mean(x², -1) + eps)            (Llama's order)
 *   layerNorm(x, w, b)  = (x − mean) / sqrt(var + eps) · w + b        (biased var)
 */
import type { Tensor } from '../tensor.ts';

export function rmsNorm(x: Tensor, weight: Tensor | null, eps: number): Tensor {
  const normed = x.mul(x.pow(2).mean(-1, true).add(eps).rsqrt()); // [..., C]
  return weight === null ? normed : weight.mul(normed);
}

export function layerNorm(x: Tensor, weight: Tensor | null, bias: Tensor | null, eps: number): Tensor {
  const centered = x.sub(x.mean(-1, true));
  const variance = centered.pow(2).mean(-1, true);
  let y = centered.mul(variance.add(eps).rsqrt());
  if (weight !== null) y = y.mul(weight);
  if (bias !== null) y = y.add(bias);
  return y;
}
