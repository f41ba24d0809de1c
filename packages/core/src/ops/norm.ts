/**
 * Normalizations over the last axis.
 *
 * rmsNorm (Llama's order), fused because the benchmark asked for it:
 *   r = 1/sqrt(mean(x²) + eps);  y = w · (x · r)
 *   dx = r · (g·w) − x · r³ · Σ(g·w·x) / C;   dw = Σ_rows g · x · r
 *
 * layerNorm, composed from primitive ops (its backward comes free):
 *   y = (x − mean) / sqrt(var + eps) · w + b        (biased variance)
 */
import { record } from '../autograd.ts';
import { Tensor, type FloatArray } from '../tensor.ts';
import { formatShape } from '../shape.ts';

function like(a: FloatArray, n = a.length): FloatArray {
  return new (a.constructor as Float32ArrayConstructor)(n) as FloatArray;
}

export function rmsNorm(x: Tensor, weight: Tensor | null, eps: number): Tensor {
  const size = x.shape[x.ndim - 1];
  if (weight !== null && (weight.ndim !== 1 || weight.shape[0] !== size)) {
    throw new Error(`rmsNorm: weight ${formatShape(weight.shape)} does not fit input ${formatShape(x.shape)}`);
  }
  const xs = x.values;
  const w = weight?.values ?? null;
  const rows = xs.length / size;
  const inverseRms = new Float64Array(rows);
  const y = like(xs);
  for (let r = 0; r < rows; r++) {
    const base = r * size;
    let squares = 0;
    for (let c = 0; c < size; c++) squares += xs[base + c] * xs[base + c];
    const inv = 1 / Math.sqrt(squares / size + eps);
    inverseRms[r] = inv;
    for (let c = 0; c < size; c++) y[base + c] = w === null ? xs[base + c] * inv : w[c] * (xs[base + c] * inv);
  }
  const inputs = weight === null ? [x] : [x, weight];
  return record('rmsNorm', new Tensor(y, x.shape), inputs, (g) => [
    () => new Tensor(rmsNormInputGrad(xs, w, g.values, inverseRms, size), x.shape),
    () => new Tensor(rmsNormWeightGrad(xs, g.values, inverseRms, size, like(xs, size)), [size]),
  ]);
}

/** dx = r · (g·w) − x · r³ · Σ(g·w·x) / C, row by row. */
function rmsNormInputGrad(xs: FloatArray, w: FloatArray | null, gs: FloatArray, inverseRms: Float64Array, size: number): FloatArray {
  const dx = like(xs);
  const gw = new Float64Array(size);
  for (let r = 0; r < inverseRms.length; r++) {
    const base = r * size;
    let dot = 0;
    for (let c = 0; c < size; c++) {
      gw[c] = w === null ? gs[base + c] : gs[base + c] * w[c];
      dot += gw[c] * xs[base + c];
    }
    const inv = inverseRms[r];
    const k = (inv * inv * inv * dot) / size;
    for (let c = 0; c < size; c++) dx[base + c] = inv * gw[c] - xs[base + c] * k;
  }
  return dx;
}

/** dw = Σ_rows g · x · r */
function rmsNormWeightGrad(xs: FloatArray, gs: FloatArray, inverseRms: Float64Array, size: number, dw: FloatArray): FloatArray {
  const sums = new Float64Array(size);
  for (let r = 0; r < inverseRms.length; r++) {
    const base = r * size;
    const inv = inverseRms[r];
    for (let c = 0; c < size; c++) sums[c] += gs[base + c] * xs[base + c] * inv;
  }
  dw.set(sums);
  return dw;
}

export function layerNorm(x: Tensor, weight: Tensor | null, bias: Tensor | null, eps: number): Tensor {
  const centered = x.sub(x.mean(-1, true));
  const variance = centered.pow(2).mean(-1, true);
  let y = centered.mul(variance.add(eps).rsqrt());
  if (weight !== null) y = y.mul(weight);
  if (bias !== null) y = y.add(bias);
  return y;
}
