/**
 * Rotary position embedding in the rotate-half layout that Hugging Face uses,
 * fused into one pass each way.
 *
 *   x [B, H, T, D], cos/sin [B|1, 1, T, D], h = D/2
 *   y[i]   = x[i]·cos[i]     − x[i+h]·sin[i]          (i < h)
 *   y[i+h] = x[i+h]·cos[i+h] + x[i]·sin[i+h]
 *   dx[i]   = g[i]·cos[i]     + g[i+h]·sin[i+h]
 *   dx[i+h] = g[i+h]·cos[i+h] − g[i]·sin[i]
 */
import { record } from '../autograd.ts';
import { Tensor, type FloatArray } from '../tensor.ts';
import { formatShape } from '../shape.ts';

type Rotation = (src: FloatArray, cos: FloatArray, sin: FloatArray, dst: FloatArray, at: number, table: number, half: number) => void;

const rotate: Rotation = (x, cos, sin, y, at, table, half) => {
  for (let i = 0; i < half; i++) {
    const a = x[at + i], b = x[at + half + i];
    y[at + i] = a * cos[table + i] - b * sin[table + i];
    y[at + half + i] = b * cos[table + half + i] + a * sin[table + half + i];
  }
};

const rotateBack: Rotation = (g, cos, sin, dx, at, table, half) => {
  for (let i = 0; i < half; i++) {
    const a = g[at + i], b = g[at + half + i];
    dx[at + i] = a * cos[table + i] + b * sin[table + half + i];
    dx[at + half + i] = b * cos[table + half + i] - a * sin[table + i];
  }
};

function eachRow(x: Tensor, cos: Tensor, src: FloatArray, costs: FloatArray, sins: FloatArray, fn: Rotation): FloatArray {
  const [batch, heads, time, dim] = x.shape;
  const dst = new (src.constructor as Float32ArrayConstructor)(src.length) as FloatArray;
  const perBatch = cos.shape[0] === batch && batch > 1;
  for (let b = 0; b < batch; b++) {
    for (let h = 0; h < heads; h++) {
      for (let t = 0; t < time; t++) {
        const at = ((b * heads + h) * time + t) * dim;
        const table = ((perBatch ? b : 0) * time + t) * dim;
        fn(src, costs, sins, dst, at, table, dim / 2);
      }
    }
  }
  return dst;
}

export function applyRotary(x: Tensor, cos: Tensor, sin: Tensor): Tensor {
  const [batch, , time, dim] = x.shape;
  const fits = (t: Tensor) => t.ndim === 4 && [1, batch].includes(t.shape[0]) && t.shape[1] === 1 && t.shape[2] === time && t.shape[3] === dim;
  if (x.ndim !== 4 || dim % 2 !== 0 || !fits(cos) || !fits(sin)) {
    throw new Error(`applyRotary: x ${formatShape(x.shape)} needs cos/sin [${batch} or 1, 1, ${time}, ${dim}], got ${formatShape(cos.shape)}`);
  }
  const y = eachRow(x, cos, x.values, cos.values, sin.values, rotate);
  return record('applyRotary', new Tensor(y, x.shape), [x], (g) => [() => new Tensor(eachRow(x, cos, g.values, cos.values, sin.values, rotateBack), x.shape)]);
}

/**
 * cos and sin tables [T, D] for the given positions and inverse frequencies
 * (D/2 of them): angle[t, i] = position[t] · invFreq[i], duplicated across the
 * two halves; `scale` multiplies both (the llama3/yarn attention factor).
 */
export function rotaryTables(positions: readonly number[], invFreq: Float64Array, scale = 1): { cos: Float32Array; sin: Float32Array } {
  const half = invFreq.length;
  const dim = 2 * half;
  const cos = new Float32Array(positions.length * dim);
  const sin = new Float32Array(positions.length * dim);
  positions.forEach((p, t) => {
    for (let i = 0; i < half; i++) {
      // NOTE: a float32 angle, as transformers computes inv_freq @ positions in float32.
      const angle = Math.fround(Math.fround(invFreq[i]) * p);
      cos[t * dim + i] = cos[t * dim + half + i] = Math.cos(angle) * scale;
      sin[t * dim + i] = sin[t * dim + half + i] = Math.sin(angle) * scale;
    }
  });
  return { cos, sin };
}
