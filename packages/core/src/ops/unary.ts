/**
 * Elementwise unary ops, each with its derivative beside it:
 * y = f(x), dx = g * f'(x) (written in terms of x or y, whichever is cheaper).
 */
import { record } from '../autograd.ts';
import { Tensor, type FloatArray } from '../tensor.ts';
import { mul } from './binary.ts';
import { erf } from './erf.ts';

type Fn = (x: number) => number;

function map(x: Tensor, f: Fn, op: string): Tensor {
  if (!x.isFloat) throw new Error(`${op}: expected a float tensor, got ${x.dtype}`);
  const src = x.values;
  const out = new (src.constructor as Float32ArrayConstructor)(src.length) as FloatArray;
  for (let i = 0; i < src.length; i++) out[i] = f(src[i]);
  return new Tensor(out, x.shape);
}

/** y = f(x) with dx = g * fPrime(x, y). */
function unary(op: string, x: Tensor, f: Fn, fPrime: (x: number, y: number) => number): Tensor {
  const out = map(x, f, op);
  return record(op, out, [x], (g) => [
    () => {
      const xs = x.values;
      const ys = out.values;
      const d = new (xs.constructor as Float32ArrayConstructor)(xs.length) as FloatArray;
      for (let i = 0; i < xs.length; i++) d[i] = fPrime(xs[i], ys[i]);
      return mul(g, new Tensor(d, x.shape));
    },
  ]);
}

export function neg(x: Tensor): Tensor {
  return record('neg', map(x, (v) => -v, 'neg'), [x], (g) => [() => neg(g)]);
}

export const exp = (x: Tensor): Tensor => unary('exp', x, Math.exp, (_, y) => y);
export const log = (x: Tensor): Tensor => unary('log', x, Math.log, (v) => 1 / v);
export const sqrt = (x: Tensor): Tensor => unary('sqrt', x, Math.sqrt, (_, y) => 0.5 / y);
export const rsqrt = (x: Tensor): Tensor => unary('rsqrt', x, (v) => 1 / Math.sqrt(v), (_, y) => -0.5 * y * y * y);
export const tanh = (x: Tensor): Tensor => unary('tanh', x, Math.tanh, (_, y) => 1 - y * y);
export const relu = (x: Tensor): Tensor => unary('relu', x, (v) => (v > 0 ? v : 0), (v) => (v > 0 ? 1 : 0));

export function pow(x: Tensor, exponent: number): Tensor {
  if (exponent === 2) return unary('pow', x, (v) => v * v, (v) => 2 * v);
  return unary('pow', x, (v) => v ** exponent, (v) => exponent * v ** (exponent - 1));
}

const sigmoidOf: Fn = (v) => 1 / (1 + Math.exp(-v));

export const sigmoid = (x: Tensor): Tensor => unary('sigmoid', x, sigmoidOf, (_, y) => y * (1 - y));

/** silu(x) = x·σ(x);  silu'(x) = σ(x)·(1 + x·(1 − σ(x))). */
export const silu = (x: Tensor): Tensor =>
  unary('silu', x, (v) => v * sigmoidOf(v), (v) => {
    const s = sigmoidOf(v);
    return s * (1 + v * (1 - s));
  });

const SQRT1_2 = Math.SQRT1_2;
const INV_SQRT_2PI = 0.3989422804014327;
const SQRT_2_OVER_PI = 0.7978845608028654;

/** Exact GELU x·Φ(x), or the tanh approximation (GPT-2's "gelu_new"). */
export function gelu(x: Tensor, approximate: 'none' | 'tanh' = 'none'): Tensor {
  if (approximate === 'tanh') {
    return unary('gelu', x, (v) => 0.5 * v * (1 + Math.tanh(SQRT_2_OVER_PI * (v + 0.044715 * v * v * v))), (v) => {
      const t = Math.tanh(SQRT_2_OVER_PI * (v + 0.044715 * v * v * v));
      const dInner = SQRT_2_OVER_PI * (1 + 3 * 0.044715 * v * v);
      return 0.5 * (1 + t) + 0.5 * v * (1 - t * t) * dInner;
    });
  }
  return unary('gelu', x, (v) => 0.5 * v * (1 + erf(v * SQRT1_2)), (v) => {
    return 0.5 * (1 + erf(v * SQRT1_2)) + v * INV_SQRT_2PI * Math.exp(-0.5 * v * v);
  });
}
