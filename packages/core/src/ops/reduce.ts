/**
 * Reductions over axes: sum, mean, max; and sumTo, which folds a broadcast
 * gradient back onto an input's shape.
 *
 *   sum([2,3,4], 1) -> [2,4];  sum([2,3,4], [0,2], true) -> [1,3,1]
 */
import { record } from '../autograd.ts';
import { Tensor, type FloatArray } from '../tensor.ts';
import { aroundAxis, formatShape, normalizeAxis, sameShape, type Shape } from '../shape.ts';
import { expand, reshape } from './layout.ts';
import { traceOp, untraceable } from '../compile/trace.ts';

function axesOf(x: Tensor, axis: number | readonly number[] | undefined, op: string): number[] {
  if (axis === undefined) return x.shape.map((_, i) => i);
  const axes = (typeof axis === 'number' ? [axis] : [...axis]).map((a) => normalizeAxis(a, x.ndim, op));
  if (new Set(axes).size !== axes.length) throw new Error(`${op}: repeated axis in [${axis}]`);
  return axes.sort((a, b) => a - b);
}

function keptShape(shape: Shape, axes: readonly number[]): number[] {
  return shape.map((d, i) => (axes.includes(i) ? 1 : d));
}

/** Sum of one axis, keeping it as size 1. */
function sumAxis(values: FloatArray, shape: Shape, axis: number): FloatArray {
  const [outer, size, inner] = aroundAxis(shape, axis);
  const out = new (values.constructor as Float32ArrayConstructor)(outer * inner) as FloatArray;
  for (let o = 0; o < outer; o++) {
    const base = o * size * inner;
    const dst = o * inner;
    for (let s = 0; s < size; s++) {
      const src = base + s * inner;
      for (let i = 0; i < inner; i++) out[dst + i] += values[src + i];
    }
  }
  return out;
}

export function sum(x: Tensor, axis?: number | readonly number[], keepDims = false): Tensor {
  const axes = axesOf(x, axis, 'sum');
  const kept = keptShape(x.shape, axes);
  let values = x.values;
  let shape: number[] = [...x.shape];
  for (const a of axes) {
    values = sumAxis(values, shape, a);
    shape[a] = 1;
  }
  const out = new Tensor(values, keepDims ? kept : x.shape.filter((_, i) => !axes.includes(i)));
  traceOp('sum', [x], [out], (g, [v]) => [axes.length === 0 ? g.node('Identity', [v]) : g.node('ReduceSum', [v, g.int64Constant(axes)], { keepdims: keepDims ? 1 : 0 })]);
  return record('sum', out, [x], (g) => [() => expand(reshape(g, kept), x.shape)]);
}

export function mean(x: Tensor, axis?: number | readonly number[], keepDims = false): Tensor {
  const axes = axesOf(x, axis, 'mean');
  const count = axes.reduce((n, a) => n * x.shape[a], 1);
  return sum(x, axes, keepDims).div(count);
}

/** Maximum along one axis; the gradient goes to the first maximal element. */
export function max(x: Tensor, axis = -1, keepDims = false): Tensor {
  const a = normalizeAxis(axis, x.ndim, 'max');
  const [outer, size, inner] = aroundAxis(x.shape, a);
  if (size === 0) throw new Error(`max: axis ${axis} of shape ${formatShape(x.shape)} is empty`);
  untraceable('max has no graph form');
  const xs = x.values;
  const values = new (xs.constructor as Float32ArrayConstructor)(outer * inner) as FloatArray;
  const argmax = new Int32Array(outer * inner);
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      let best = o * size * inner + i;
      for (let s = 1; s < size; s++) {
        const j = o * size * inner + s * inner + i;
        if (xs[j] > xs[best]) best = j;
      }
      values[o * inner + i] = xs[best];
      argmax[o * inner + i] = best;
    }
  }
  const kept = keptShape(x.shape, [a]);
  const out = new Tensor(values, keepDims ? kept : x.shape.filter((_, i) => i !== a));
  return record('max', out, [x], (g) => [
    () => {
      const dx = new (xs.constructor as Float32ArrayConstructor)(xs.length) as FloatArray;
      const gs = g.values;
      for (let k = 0; k < argmax.length; k++) dx[argmax[k]] += gs[k];
      return new Tensor(dx, x.shape);
    },
  ]);
}

/** Sum `g` down to `shape`, undoing broadcasting. */
export function sumTo(g: Tensor, shape: Shape): Tensor {
  if (sameShape(g.shape, shape)) return g;
  const lead = g.ndim - shape.length;
  if (lead < 0) throw new Error(`sumTo: cannot reduce ${formatShape(g.shape)} to ${formatShape(shape)}`);
  const axes = g.shape.map((_, i) => i).filter((i) => i < lead || (shape[i - lead] === 1 && g.shape[i] !== 1));
  return reshape(sum(g, axes), shape);
}
