/**
 * softmax and logSoftmax along an axis (max-subtracted, stable).
 *
 *   y = softmax(x):     dx = y · (g − Σ g·y)
 *   y = logSoftmax(x):  dx = g − softmax(x) · Σ g
 */
import { record } from '../autograd.ts';
import { Tensor, type FloatArray } from '../tensor.ts';
import { aroundAxis, normalizeAxis } from '../shape.ts';

type RowFn = (src: FloatArray, dst: FloatArray, start: number, size: number, stride: number) => void;

/** Apply `fn` to every line along `axis`. */
function alongAxis(x: Tensor, axis: number, op: string, fn: RowFn): Tensor {
  const a = normalizeAxis(axis, x.ndim, op);
  const [outer, size, inner] = aroundAxis(x.shape, a);
  const src = x.values;
  const dst = new (src.constructor as Float32ArrayConstructor)(src.length) as FloatArray;
  for (let o = 0; o < outer; o++) for (let i = 0; i < inner; i++) fn(src, dst, o * size * inner + i, size, inner);
  return new Tensor(dst, x.shape);
}

const softmaxLine: RowFn = (src, dst, start, size, stride) => {
  const end = start + size * stride;
  let max = -Infinity;
  for (let j = start; j < end; j += stride) if (src[j] > max) max = src[j];
  let total = 0;
  for (let j = start; j < end; j += stride) total += dst[j] = Math.exp(src[j] - max);
  for (let j = start; j < end; j += stride) dst[j] /= total;
};

const logSoftmaxLine: RowFn = (src, dst, start, size, stride) => {
  const end = start + size * stride;
  let max = -Infinity;
  for (let j = start; j < end; j += stride) if (src[j] > max) max = src[j];
  let total = 0;
  for (let j = start; j < end; j += stride) total += Math.exp(src[j] - max);
  const logTotal = max + Math.log(total);
  for (let j = start; j < end; j += stride) dst[j] = src[j] - logTotal;
};

export function softmax(x: Tensor, axis = -1): Tensor {
  const y = alongAxis(x, axis, 'softmax', softmaxLine);
  return record('softmax', y, [x], (g) => [
    () => {
      const gy = g.mul(y);
      return gy.sub(y.mul(gy.sum(axis, true)));
    },
  ]);
}

export function logSoftmax(x: Tensor, axis = -1): Tensor {
  const y = alongAxis(x, axis, 'logSoftmax', logSoftmaxLine);
  return record('logSoftmax', y, [x], (g) => [() => g.sub(y.exp().mul(g.sum(axis, true)))]);
}
