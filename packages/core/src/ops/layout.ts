/**
 * Layout ops: reshape, expand, transpose/permute, slice, concat, split.
 * Reshape shares the data (tensors are contiguous); the others copy.
 */
import { record } from '../autograd.ts';
import { Tensor, type FloatArray, type Storage } from '../tensor.ts';
import { aroundAxis, broadcastShapes, formatShape, normalizeAxis, numel, sameShape, stridesOf, type Shape } from '../shape.ts';
import { sumTo } from './reduce.ts';
import { traceOp, untraced } from '../compile/trace.ts';

function newLike(data: Storage, n: number): Storage {
  return new (data.constructor as Float32ArrayConstructor)(n) as Storage;
}

/** Same data, new shape; one dim may be -1. */
export function reshape(x: Tensor, shape: Shape): Tensor {
  const inferred = shape.indexOf(-1);
  const known = numel(shape.filter((d) => d !== -1));
  const target = inferred < 0 ? [...shape] : shape.map((d) => (d === -1 ? x.numel / known : d));
  if (numel(target) !== x.numel || !target.every(Number.isInteger)) {
    throw new Error(`reshape: cannot view ${formatShape(x.shape)} (${x.numel} elements) as ${formatShape(shape)}`);
  }
  if (sameShape(target, x.shape)) return x;
  const out = new Tensor(x.data, target);
  traceOp('reshape', [x], [out], (g, [v]) => [g.node('Reshape', [v, g.int64Constant(target)])]);
  return record('reshape', out, [x], (g) => [() => reshape(g, x.shape)]);
}

/**
 * Gather `dst` from `src` in contiguous blocks of `block` elements: block k of
 * the output starts at the source offset that `strides` give for position k of
 * `outer` (an odometer over the outer axes).
 */
function copyBlocks(src: FloatArray, dst: FloatArray, outer: readonly number[], strides: readonly number[], block: number): void {
  const counter = new Array<number>(outer.length).fill(0);
  const blocks = dst.length / block;
  let offset = 0;
  for (let k = 0; k < blocks; k++) {
    const at = k * block;
    for (let i = 0; i < block; i++) dst[at + i] = src[offset + i];
    for (let d = outer.length - 1; d >= 0; d--) {
      counter[d]++;
      offset += strides[d];
      if (counter[d] < outer[d]) break;
      offset -= strides[d] * outer[d];
      counter[d] = 0;
    }
  }
}

/** How many trailing axes satisfy `keep`, and the product of their sizes. */
function contiguousTail(shape: Shape, keep: (axis: number) => boolean): [number, number] {
  let axes = 0;
  let block = 1;
  for (let d = shape.length - 1; d >= 0 && keep(d); d--) {
    axes++;
    block *= shape[d];
  }
  return [axes, block];
}

/** Broadcast to a larger shape (a copy); the gradient sums back. */
export function expand(x: Tensor, shape: Shape): Tensor {
  if (sameShape(x.shape, shape)) return x;
  const target = broadcastShapes(x.shape, shape, 'expand');
  if (!sameShape(target, shape)) throw new Error(`expand: ${formatShape(x.shape)} does not expand to ${formatShape(shape)}`);
  const lead = shape.length - x.ndim;
  const [tail, block] = contiguousTail(shape, (d) => d >= lead && x.shape[d - lead] === shape[d]);
  const inStrides = stridesOf(x.shape);
  const outer = shape.slice(0, shape.length - tail);
  const strides = outer.map((size, d) => (d < lead || x.shape[d - lead] !== size ? 0 : inStrides[d - lead]));
  const out = newLike(x.data, numel(shape)) as FloatArray;
  copyBlocks(x.data as FloatArray, out, outer, strides, block);
  const result = new Tensor(out, shape);
  traceOp('expand', [x], [result], (g, [v]) => [g.node('Expand', [v, g.int64Constant(shape)])]);
  return record('expand', result, [x], (g) => [() => sumTo(g, x.shape)]);
}

export function permute(x: Tensor, axes: readonly number[]): Tensor {
  const perm = axes.map((a) => normalizeAxis(a, x.ndim, 'permute'));
  if (perm.length !== x.ndim || new Set(perm).size !== perm.length) {
    throw new Error(`permute: [${axes}] is not a permutation of the ${x.ndim} axes of ${formatShape(x.shape)}`);
  }
  const shape = perm.map((a) => x.shape[a]);
  const [tail, block] = contiguousTail(shape, (d) => perm[d] === d);
  const inStrides = stridesOf(x.shape);
  const outer = shape.slice(0, shape.length - tail);
  const out = newLike(x.data, x.numel) as FloatArray;
  copyBlocks(x.data as FloatArray, out, outer, outer.map((_, d) => inStrides[perm[d]]), block);
  const inverse = perm.map((_, i) => perm.indexOf(i));
  const result = new Tensor(out, shape);
  traceOp('permute', [x], [result], (g, [v]) => [g.node('Transpose', [v], { perm })]);
  return record('permute', result, [x], (g) => [() => permute(g, inverse)]);
}

export function transpose(x: Tensor, a = -2, b = -1): Tensor {
  const axes = x.shape.map((_, i) => i);
  const i = normalizeAxis(a, x.ndim, 'transpose');
  const j = normalizeAxis(b, x.ndim, 'transpose');
  [axes[i], axes[j]] = [axes[j], axes[i]];
  return permute(x, axes);
}

/** x[..., start:end, ...] along `axis`. */
export function slice(x: Tensor, axis: number, start: number, end: number): Tensor {
  const a = normalizeAxis(axis, x.ndim, 'slice');
  const size = x.shape[a];
  if (!(Number.isInteger(start) && Number.isInteger(end) && 0 <= start && start <= end && end <= size)) {
    throw new Error(`slice: [${start}, ${end}) is outside axis ${axis} of size ${size}`);
  }
  const [outer, , inner] = aroundAxis(x.shape, a);
  const width = (end - start) * inner;
  const out = newLike(x.data, outer * width) as FloatArray;
  const src = x.data as FloatArray;
  for (let o = 0; o < outer; o++) out.set(src.subarray(o * size * inner + start * inner, o * size * inner + end * inner), o * width);
  const shape = x.shape.map((d, i) => (i === a ? end - start : d));
  const result = new Tensor(out, shape);
  traceOp('slice', [x], [result], (g, [v]) => [g.node('Slice', [v, g.int64Constant([start]), g.int64Constant([end]), g.int64Constant([a])])]);
  return record('slice', result, [x], (g) => [() => pad(g, a, start, size - end)]);
}

/** Zeros before and after along `axis`: the transpose of slice. */
function pad(x: Tensor, axis: number, before: number, after: number): Tensor {
  if (before === 0 && after === 0) return x;
  const zerosOf = (n: number) => Tensor.zeros(x.shape.map((d, i) => (i === axis ? n : d)), x.dtype);
  const out = untraced(() => concat([zerosOf(before), x, zerosOf(after)], axis));
  const pads = x.shape.map(() => 0).concat(x.shape.map(() => 0));
  [pads[axis], pads[x.ndim + axis]] = [before, after];
  traceOp('pad', [x], [out], (g, [v]) => [g.node('Pad', [v, g.int64Constant(pads)])]);
  return out;
}

export function concat(tensors: readonly Tensor[], axis: number): Tensor {
  if (tensors.length === 0) throw new Error('concat: no tensors');
  const first = tensors[0];
  const a = normalizeAxis(axis, first.ndim, 'concat');
  for (const t of tensors) {
    const fits = t.ndim === first.ndim && t.dtype === first.dtype && t.shape.every((d, i) => i === a || d === first.shape[i]);
    if (!fits) throw new Error(`concat: ${formatShape(t.shape)} ${t.dtype} does not fit ${formatShape(first.shape)} ${first.dtype} along axis ${axis}`);
  }
  const sizes = tensors.map((t) => t.shape[a]);
  const total = sizes.reduce((s, d) => s + d, 0);
  const shape = first.shape.map((d, i) => (i === a ? total : d));
  const [outer, , inner] = aroundAxis(shape, a);
  const out = newLike(first.data, numel(shape)) as FloatArray;
  let at = 0;
  tensors.forEach((t, k) => {
    const width = sizes[k] * inner;
    const src = t.data as FloatArray;
    for (let o = 0; o < outer; o++) out.set(src.subarray(o * width, (o + 1) * width), o * total * inner + at * inner);
    at += sizes[k];
  });
  const offsets = sizes.map((_, k) => sizes.slice(0, k).reduce((s, d) => s + d, 0));
  const result = new Tensor(out, shape);
  traceOp('concat', tensors, [result], (g, values) => [g.node('Concat', values, { axis: a })]);
  return record('concat', result, tensors, (g) => tensors.map((_, k) => () => slice(g, a, offsets[k], offsets[k] + sizes[k])));
}

export function split(x: Tensor, sizes: readonly number[], axis: number): Tensor[] {
  const a = normalizeAxis(axis, x.ndim, 'split');
  if (sizes.reduce((s, d) => s + d, 0) !== x.shape[a]) {
    throw new Error(`split: sizes [${sizes}] do not add up to axis ${axis} of ${formatShape(x.shape)}`);
  }
  let at = 0;
  return sizes.map((d) => slice(x, a, at, (at += d)));
}
