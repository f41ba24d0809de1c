/**
 * Elementwise unary ops. Each op is its forward loop and its gradient loop
 * side by side: y = f(x) and dx = g · f'(x) (written with x or y, whichever
 * is cheaper). The loops are spelled out per op so each stays monomorphic.
 */
import { record } from '../autograd.ts';
import { Tensor, type FloatArray } from '../tensor.ts';
import { erf } from './erf.ts';

interface UnaryKernel {
  forward(x: FloatArray, y: FloatArray): void;
  /** dx[i] = g[i] · f'(x[i]) */
  backward(x: FloatArray, y: FloatArray, g: FloatArray, dx: FloatArray): void;
}

function like(a: FloatArray): FloatArray {
  return new (a.constructor as Float32ArrayConstructor)(a.length) as FloatArray;
}

function unary(op: string, x: Tensor, kernel: UnaryKernel): Tensor {
  if (!x.isFloat) throw new Error(`${op}: expected a float tensor, got ${x.dtype}`);
  const y = like(x.values);
  kernel.forward(x.values, y);
  const out = new Tensor(y, x.shape);
  return record(op, out, [x], (g) => [
    () => {
      const dx = like(y);
      kernel.backward(x.values, y, g.values, dx);
      return new Tensor(dx, x.shape);
    },
  ]);
}

const kernels = {
  neg: {
    forward(x, y) { for (let i = 0; i < x.length; i++) y[i] = -x[i]; },
    backward(_x, _y, g, dx) { for (let i = 0; i < g.length; i++) dx[i] = -g[i]; },
  },
  exp: {
    forward(x, y) { for (let i = 0; i < x.length; i++) y[i] = Math.exp(x[i]); },
    backward(_x, y, g, dx) { for (let i = 0; i < g.length; i++) dx[i] = g[i] * y[i]; },
  },
  log: {
    forward(x, y) { for (let i = 0; i < x.length; i++) y[i] = Math.log(x[i]); },
    backward(x, _y, g, dx) { for (let i = 0; i < g.length; i++) dx[i] = g[i] / x[i]; },
  },
  sqrt: {
    forward(x, y) { for (let i = 0; i < x.length; i++) y[i] = Math.sqrt(x[i]); },
    backward(_x, y, g, dx) { for (let i = 0; i < g.length; i++) dx[i] = (0.5 * g[i]) / y[i]; },
  },
  rsqrt: {
    forward(x, y) { for (let i = 0; i < x.length; i++) y[i] = 1 / Math.sqrt(x[i]); },
    backward(_x, y, g, dx) { for (let i = 0; i < g.length; i++) dx[i] = -0.5 * g[i] * y[i] * y[i] * y[i]; },
  },
  tanh: {
    forward(x, y) { for (let i = 0; i < x.length; i++) y[i] = Math.tanh(x[i]); },
    backward(_x, y, g, dx) { for (let i = 0; i < g.length; i++) dx[i] = g[i] * (1 - y[i] * y[i]); },
  },
  relu: {
    forward(x, y) { for (let i = 0; i < x.length; i++) y[i] = x[i] > 0 ? x[i] : 0; },
    backward(x, _y, g, dx) { for (let i = 0; i < g.length; i++) dx[i] = x[i] > 0 ? g[i] : 0; },
  },
  sigmoid: {
    forward(x, y) { for (let i = 0; i < x.length; i++) y[i] = 1 / (1 + Math.exp(-x[i])); },
    backward(_x, y, g, dx) { for (let i = 0; i < g.length; i++) dx[i] = g[i] * y[i] * (1 - y[i]); },
  },
  /** silu(x) = x·σ(x);  silu'(x) = σ(x)·(1 + x·(1 − σ(x))) */
  silu: {
    forward(x, y) { for (let i = 0; i < x.length; i++) y[i] = x[i] / (1 + Math.exp(-x[i])); },
    backward(x, _y, g, dx) {
      for (let i = 0; i < g.length; i++) {
        const s = 1 / (1 + Math.exp(-x[i]));
        dx[i] = g[i] * s * (1 + x[i] * (1 - s));
      }
    },
  },
  /** gelu(x) = x·Φ(x);  gelu'(x) = Φ(x) + x·φ(x) */
  gelu: {
    forward(x, y) { for (let i = 0; i < x.length; i++) y[i] = 0.5 * x[i] * (1 + erf(x[i] * Math.SQRT1_2)); },
    backward(x, _y, g, dx) {
      for (let i = 0; i < g.length; i++) {
        const v = x[i];
        dx[i] = g[i] * (0.5 * (1 + erf(v * Math.SQRT1_2)) + v * INV_SQRT_2PI * Math.exp(-0.5 * v * v));
      }
    },
  },
  /** GPT-2's gelu_new: 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))) */
  geluTanh: {
    forward(x, y) {
      for (let i = 0; i < x.length; i++) y[i] = 0.5 * x[i] * (1 + Math.tanh(SQRT_2_OVER_PI * (x[i] + 0.044715 * x[i] ** 3)));
    },
    backward(x, _y, g, dx) {
      for (let i = 0; i < g.length; i++) {
        const v = x[i];
        const t = Math.tanh(SQRT_2_OVER_PI * (v + 0.044715 * v * v * v));
        dx[i] = g[i] * (0.5 * (1 + t) + 0.5 * v * (1 - t * t) * SQRT_2_OVER_PI * (1 + 3 * 0.044715 * v * v));
      }
    },
  },
} satisfies Record<string, UnaryKernel>;

const INV_SQRT_2PI = 0.3989422804014327;
const SQRT_2_OVER_PI = 0.7978845608028654;

export const neg = (x: Tensor): Tensor => unary('neg', x, kernels.neg);
export const exp = (x: Tensor): Tensor => unary('exp', x, kernels.exp);
export const log = (x: Tensor): Tensor => unary('log', x, kernels.log);
export const sqrt = (x: Tensor): Tensor => unary('sqrt', x, kernels.sqrt);
export const rsqrt = (x: Tensor): Tensor => unary('rsqrt', x, kernels.rsqrt);
export const tanh = (x: Tensor): Tensor => unary('tanh', x, kernels.tanh);
export const relu = (x: Tensor): Tensor => unary('relu', x, kernels.relu);
export const sigmoid = (x: Tensor): Tensor => unary('sigmoid', x, kernels.sigmoid);
export const silu = (x: Tensor): Tensor => unary('silu', x, kernels.silu);

/** Exact GELU x·Φ(x), or the tanh approximation (GPT-2's "gelu_new"). */
export function gelu(x: Tensor, approximate: 'none' | 'tanh' = 'none'): Tensor {
  return unary('gelu', x, approximate === 'tanh' ? kernels.geluTanh : kernels.gelu);
}

/** x^p for a constant p. */
export function pow(x: Tensor, p: number): Tensor {
  return unary('pow', x, {
    forward(xs, y) { for (let i = 0; i < xs.length; i++) y[i] = p === 2 ? xs[i] * xs[i] : xs[i] ** p; },
    backward(xs, _y, g, dx) { for (let i = 0; i < g.length; i++) dx[i] = g[i] * p * (p === 2 ? xs[i] : xs[i] ** (p - 1)); },
  });
}
