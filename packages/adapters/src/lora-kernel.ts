/**
 * The LoRA linear layer as one native call each way.
 *
 *   x, xl [N, in] (xl = dropout(x), or x itself), A [r, in], B [out, r]
 *   y  = base(x) + b + s·(xl·Aᵀ)·Bᵀ                       -> [N, out]
 *
 * Backward, with h = xl·Aᵀ kept from the forward and g = s·(dy·B):
 *   dx  = base'ᵀ(dy)  (+ g·A when xl is x)
 *   dxl = g·A;   dA = gᵀ·xl;   dB = s·dyᵀ·h
 * The frozen base weight gets no gradient, so no [out, in] weight gradient is ever
 * formed. With many rows and xl = x, the low-rank term goes into the weight
 * instead, W' = W + s·B·A (2·out·in·r flops rather than 2·N·r·(in + out), and no
 * skinny products): y = x·W'ᵀ + b, dx = dy·W'; the same sums in another order.
 */
import { Tensor } from '@lorakit/core';
import { formatShape, matmul, record, sum } from '@lorakit/core/ops';
import { GraphBuilder, choosesBySize, nativeKernel, type ElemType } from '@lorakit/core/native';
import type { LinearBase } from './base-layer.ts';

interface Variant {
  kind: string;
  dtype: 'float32' | 'float64';
  /** The LoRA input is x itself (no dropout): one input, one input gradient. */
  shared: boolean;
  /** W' = W + s·B·A formed in the graph (shared input, a dense base, many rows). */
  merged: boolean;
  bias: boolean;
  weights: number;
}

function forwardGraph(base: LinearBase, v: Variant): Uint8Array {
  const g = new GraphBuilder(`lora_forward_${v.kind}`, v.dtype);
  const x = g.input('x');
  const xl = v.shared ? x : g.input('xl');
  const weights = Array.from({ length: v.weights }, (_, i) => g.input(`w${i}`, base.kernelInputs()[i].dtype as ElemType));
  const bias = v.bias ? g.input('bias') : null;
  const [a, b, s] = ['a', 'b', 's'].map((n) => g.input(n));
  const sB = g.node('Mul', [b, s]); // [out, r]
  const h = g.node('MatMul', [xl, g.node('Transpose', [a], { perm: [1, 0] })]); // [N, r]
  let y = base.forwardNodes(g, x, v.merged ? base.withLowRankNodes!(g, weights, sB, a) : weights);
  if (bias !== null) y = g.node('Add', [y, bias]);
  g.output(v.merged ? y : g.node('Gemm', [h, sB, y], { transB: 1 })); // y + h·(s·B)ᵀ, accumulated by the GEMM: no [N, out] pass for the scale or the sum
  g.output(h);
  return g.build();
}

function backwardGraph(base: LinearBase, v: Variant): Uint8Array {
  const g = new GraphBuilder(`lora_backward_${v.kind}`, v.dtype);
  const dy = g.input('dy');
  const xl = g.input('xl');
  const weights = base.backwardInputs().map((w, i) => g.input(`w${i}`, w.dtype as ElemType));
  const [a, b, h, s] = ['a', 'b', 'h', 's'].map((n) => g.input(n));
  const sB = g.node('Mul', [b, s]); // [out, r]
  const gr = g.node('MatMul', [dy, sB]); // [N, r]
  if (v.merged) g.output(base.inputGradNodes(g, dy, base.withLowRankNodes!(g, weights, sB, a)));
  else if (v.shared) g.output(g.node('Gemm', [gr, a, base.inputGradNodes(g, dy, weights)])); // dxBase + gr·A, accumulated by the GEMM
  else {
    g.output(base.inputGradNodes(g, dy, weights));
    g.output(g.node('MatMul', [gr, a]));
  }
  g.output(g.node('MatMul', [g.node('Transpose', [gr], { perm: [1, 0] }), xl])); // dA [r, in]
  g.output(g.node('Mul', [g.node('MatMul', [g.node('Transpose', [dy], { perm: [1, 0] }), h]), s])); // dB [out, r]
  return g.build();
}

export function loraLinear(x: Tensor, xl: Tensor, base: LinearBase, a: Tensor, b: Tensor, scaling: number): Tensor {
  const [n, inFeatures] = x.shape;
  if (x.ndim !== 2 || inFeatures !== base.inFeatures || xl.shape.join() !== x.shape.join()) {
    throw new Error(`loraLinear: input ${formatShape(x.shape)} does not fit a layer of ${base.inFeatures} inputs`);
  }
  const weights = base.kernelInputs();
  const bias = base.bias;
  const dtype = x.dtype as Variant['dtype'];
  const shared = xl === x;
  const merged = shared && base.withLowRankNodes !== undefined && choosesBySize() && n * (base.inFeatures + base.outFeatures) >= base.inFeatures * base.outFeatures;
  const v: Variant = { kind: base.kernelKind, dtype, shared, merged, bias: bias !== null, weights: weights.length };
  const key = `lora:${v.kind}:${dtype}:${v.shared}:${v.merged}:${v.bias}:${v.weights}`;
  const s = Tensor.scalar(scaling, dtype);
  const forwardInputs = [x, ...(v.shared ? [] : [xl]), ...weights, ...(bias ? [bias] : []), a, b, s];
  const arena = { arena: base.arena ?? false };
  const [y, h] = nativeKernel(`${key}:forward`, dtype, () => forwardGraph(base, v), arena).run(forwardInputs);
  if (y.shape[0] !== n || y.shape[1] !== base.outFeatures) throw new Error(`loraLinear: native result ${formatShape(y.shape)}`);

  let grads: Tensor[] | null = null;
  const gradsFor = (dy: Tensor) => (grads ??= nativeKernel(`${key}:backward`, dtype, () => backwardGraph(base, v), arena).run([dy, xl, ...base.backwardInputs(), a, b, h, s]));
  const next = v.shared ? 1 : 2; // index of dA among the outputs
  const inputs = v.shared ? [x, a, b] : [x, xl, a, b];
  const thunks = (dy: Tensor) => (v.shared ? [() => gradsFor(dy)[0]] : [() => gradsFor(dy)[0], () => gradsFor(dy)[1]]).concat([() => gradsFor(dy)[next], () => gradsFor(dy)[next + 1]]);
  const out = record('loraLinear', y, inputs, thunks);
  return withBaseGradients(out, x, base, bias);
}

/**
 * When the base weight or bias is trainable (bias "all" / "lora_only", or a
 * user who unfroze it), their gradients flow through a zero-valued side path,
 * computed only if needed: dW = dyᵀ·x (transposed for Conv1D), db = Σ dy.
 */
function withBaseGradients(out: Tensor, x: Tensor, base: LinearBase, bias: Tensor | null): Tensor {
  const weight = base.weightParameter;
  const trainable = [weight, bias].filter((t): t is Tensor => t !== null && t.requiresGrad);
  if (trainable.length === 0) return out;
  const result = new Tensor(out.data, out.shape);
  return record('loraLinearBase', result, [out, ...trainable], (dy) => [
    () => dy,
    ...trainable.map((t) => () => (t === bias ? sum(dy, 0) : base.kernelKind === 'conv1d' ? matmul(x, dy, { transposeA: true }) : matmul(dy, x, { transposeA: true }))),
  ]);
}
