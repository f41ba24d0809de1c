/**
 * SwiGLU gating, fused on the native runtime (the decoder-block benchmark
 * asked for it: the exponentials are several times faster vectorized).
 *
 *   y = silu(gate) · up,  s = σ(gate)
 *   dgate = g · up · s · (1 + gate · (1 − s));   dup = g · gate · s
 */
import { record } from '../autograd.ts';
import type { Tensor } from '../tensor.ts';
import { formatShape, sameShape } from '../shape.ts';
import { GraphBuilder } from '../native/graph.ts';
import { nativeKernel } from '../native/session.ts';

type Float = 'float32' | 'float64';

function forwardGraph(dtype: Float): Uint8Array {
  const g = new GraphBuilder('swiglu_forward', dtype);
  const gate = g.input('gate');
  const up = g.input('up');
  g.output(g.node('Mul', [g.node('Mul', [gate, g.node('Sigmoid', [gate])]), up]));
  return g.build();
}

function backwardGraph(dtype: Float): Uint8Array {
  const g = new GraphBuilder('swiglu_backward', dtype);
  const [grad, gate, up] = ['grad', 'gate', 'up'].map((n) => g.input(n));
  const s = g.node('Sigmoid', [gate]);
  const silu = g.node('Mul', [gate, s]);
  const slope = g.node('Mul', [s, g.node('Add', [g.scalar(1), g.node('Sub', [gate, silu])])]); // s·(1 + gate·(1 − s))
  g.output(g.node('Mul', [g.node('Mul', [grad, up]), slope]));
  g.output(g.node('Mul', [grad, silu]));
  return g.build();
}

export function swiglu(gate: Tensor, up: Tensor): Tensor {
  if (!sameShape(gate.shape, up.shape) || !gate.isFloat || gate.dtype !== up.dtype) {
    throw new Error(`swiglu: gate ${formatShape(gate.shape)} ${gate.dtype} and up ${formatShape(up.shape)} ${up.dtype} must match`);
  }
  const dtype = gate.dtype as Float;
  const [out] = nativeKernel(`swiglu_forward:${dtype}`, dtype, () => forwardGraph(dtype)).run([gate, up]);
  let grads: Tensor[] | null = null;
  const gradsFor = (g: Tensor) => (grads ??= nativeKernel(`swiglu_backward:${dtype}`, dtype, () => backwardGraph(dtype), { arena: true }).run([g, gate, up]));
  return record('swiglu', out, [gate, up], (g) => [() => gradsFor(g)[0], () => gradsFor(g)[1]]);
}
