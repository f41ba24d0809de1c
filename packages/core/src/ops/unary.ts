/**
 * Elementwise unary ops. Each op is its forward loop and its gradient loop
 * side by side: y = f(x) and dx = g · f'(x) (written with x or y, whichever
 * is cheaper). The loops are spelled out per op so each stays monomorphic.
 * Beside the loops, the same two as graph nodes, for a trace (compile/trace.ts).
 */
import { record } from '../autograd.ts';
import { Tensor, type FloatArray } from '../tensor.ts';
import { erf } from './erf.ts';
import { traceOp, type NodeWriter } from '../compile/trace.ts';

interface UnaryKernel {
  forward(x: FloatArray, y: FloatArray): void;
  /** dx[i] = g[i] · f'(x[i]) */
  backward(x: FloatArray, y: FloatArray, g: FloatArray, dx: FloatArray): void;
  /** The forward and the backward as nodes on graph values. */
  graph(w: GraphMath, x: string): string;
  gradGraph(w: GraphMath, x: string, y: string, g: string): string;
}

/** Arithmetic on graph values, for the kernels' graph forms. */
class GraphMath {
  constructor(readonly w: NodeWriter) {}
  op(type: string, ...inputs: string[]): string { return this.w.node(type, inputs); }
  mul(...xs: string[]): string { return xs.reduce((a, b) => this.op('Mul', a, b)); }
  add(a: string, b: string): string { return this.op('Add', a, b); }
  sub(a: string, b: string): string { return this.op('Sub', a, b); }
  c(value: number): string { return this.w.scalar(value); }
}

function like(a: FloatArray): FloatArray {
  return new (a.constructor as Float32ArrayConstructor)(a.length) as FloatArray;
}

function unary(op: string, x: Tensor, kernel: UnaryKernel): Tensor {
  if (!x.isFloat) throw new Error(`${op}: expected a float tensor, got ${x.dtype}`);
  const y = like(x.values);
  kernel.forward(x.values, y);
  const out = new Tensor(y, x.shape);
  traceOp(op, [x], [out], (w, [xv]) => [kernel.graph(new GraphMath(w), xv)]);
  return record(op, out, [x], (g) => [
    () => {
      const dx = like(y);
      kernel.backward(x.values, y, g.values, dx);
      const grad = new Tensor(dx, x.shape);
      traceOp(`${op} backward`, [x, out, g], [grad], (w, [xv, yv, gv]) => [kernel.gradGraph(new GraphMath(w), xv, yv, gv)]);
      return grad;
    },
  ]);
}

const kernels = {
  neg: {
    forward(x, y) { for (let i = 0; i < x.length; i++) y[i] = -x[i]; },
    backward(_x, _y, g, dx) { for (let i = 0; i < g.length; i++) dx[i] = -g[i]; },
    graph: (m, x) => m.op('Neg', x),
    gradGraph: (m, _x, _y, g) => m.op('Neg', g),
  },
  exp: {
    forward(x, y) { for (let i = 0; i < x.length; i++) y[i] = Math.exp(x[i]); },
    backward(_x, y, g, dx) { for (let i = 0; i < g.length; i++) dx[i] = g[i] * y[i]; },
    graph: (m, x) => m.op('Exp', x),
    gradGraph: (m, _x, y, g) => m.mul(g, y),
  },
  log: {
    forward(x, y) { for (let i = 0; i < x.length; i++) y[i] = Math.log(x[i]); },
    backward(x, _y, g, dx) { for (let i = 0; i < g.length; i++) dx[i] = g[i] / x[i]; },
    graph: (m, x) => m.op('Log', x),
    gradGraph: (m, x, _y, g) => m.op('Div', g, x),
  },
  sqrt: {
    forward(x, y) { for (let i = 0; i < x.length; i++) y[i] = Math.sqrt(x[i]); },
    backward(_x, y, g, dx) { for (let i = 0; i < g.length; i++) dx[i] = (0.5 * g[i]) / y[i]; },
    graph: (m, x) => m.op('Sqrt', x),
    gradGraph: (m, _x, y, g) => m.op('Div', m.mul(m.c(0.5), g), y),
  },
  rsqrt: {
    forward(x, y) { for (let i = 0; i < x.length; i++) y[i] = 1 / Math.sqrt(x[i]); },
    backward(_x, y, g, dx) { for (let i = 0; i < g.length; i++) dx[i] = -0.5 * g[i] * y[i] * y[i] * y[i]; },
    graph: (m, x) => m.op('Reciprocal', m.op('Sqrt', x)),
    gradGraph: (m, _x, y, g) => m.mul(m.c(-0.5), g, y, y, y),
  },
  tanh: {
    forward(x, y) { for (let i = 0; i < x.length; i++) y[i] = Math.tanh(x[i]); },
    backward(_x, y, g, dx) { for (let i = 0; i < g.length; i++) dx[i] = g[i] * (1 - y[i] * y[i]); },
    graph: (m, x) => m.op('Tanh', x),
    gradGraph: (m, _x, y, g) => m.mul(g, m.sub(m.c(1), m.mul(y, y))),
  },
  relu: {
    forward(x, y) { for (let i = 0; i < x.length; i++) y[i] = x[i] > 0 ? x[i] : 0; },
    backward(x, _y, g, dx) { for (let i = 0; i < g.length; i++) dx[i] = x[i] > 0 ? g[i] : 0; },
    graph: (m, x) => m.op('Relu', x),
    gradGraph: (m, x, _y, g) => m.op('Where', m.op('Greater', x, m.c(0)), g, m.c(0)),
  },
  sigmoid: {
    forward(x, y) { for (let i = 0; i < x.length; i++) y[i] = 1 / (1 + Math.exp(-x[i])); },
    backward(_x, y, g, dx) { for (let i = 0; i < g.length; i++) dx[i] = g[i] * y[i] * (1 - y[i]); },
    graph: (m, x) => m.op('Sigmoid', x),
    gradGraph: (m, _x, y, g) => m.mul(g, y, m.sub(m.c(1), y)),
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
    graph: (m, x) => m.mul(x, m.op('Sigmoid', x)),
    gradGraph: (m, x, _y, g) => {
      const s = m.op('Sigmoid', x);
      return m.mul(g, s, m.add(m.c(1), m.mul(x, m.sub(m.c(1), s))));
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
    graph: (m, x) => m.mul(m.c(0.5), x, m.add(m.c(1), m.op('Erf', m.mul(x, m.c(Math.SQRT1_2))))),
    gradGraph: (m, x, _y, g) => {
      const cdf = m.mul(m.c(0.5), m.add(m.c(1), m.op('Erf', m.mul(x, m.c(Math.SQRT1_2)))));
      const pdf = m.mul(m.c(INV_SQRT_2PI), m.op('Exp', m.mul(m.c(-0.5), x, x)));
      return m.mul(g, m.add(cdf, m.mul(x, pdf)));
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
    graph: (m, x) => m.mul(m.c(0.5), x, m.add(m.c(1), geluTanhInner(m, x))),
    gradGraph: (m, x, _y, g) => {
      const t = geluTanhInner(m, x);
      const slope = m.mul(m.c(0.5 * SQRT_2_OVER_PI), x, m.sub(m.c(1), m.mul(t, t)), m.add(m.c(1), m.mul(m.c(3 * 0.044715), x, x)));
      return m.mul(g, m.add(m.mul(m.c(0.5), m.add(m.c(1), t)), slope));
    },
  },
} satisfies Record<string, UnaryKernel>;

const INV_SQRT_2PI = 0.3989422804014327;
const SQRT_2_OVER_PI = 0.7978845608028654;

/** tanh(√(2/π)·(x + 0.044715·x³)) */
function geluTanhInner(m: GraphMath, x: string): string {
  return m.op('Tanh', m.mul(m.c(SQRT_2_OVER_PI), m.add(x, m.mul(m.c(0.044715), x, x, x))));
}

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
    graph: (m, x) => (p === 2 ? m.mul(x, x) : m.op('Pow', x, m.c(p))),
    gradGraph: (m, x, _y, g) => m.mul(g, m.c(p), p === 2 ? x : m.op('Pow', x, m.c(p - 1))),
  });
}
