/**
 * Normalizations over the last axis.
 *
 * rmsNorm (Llama's order), on the native runtime because the benchmark asked for it:
 *   r = 1/sqrt(mean(x²) + eps);  y = w · (x · r)
 *   dx = r · (g·w) − x · r³ · Σ(g·w·x) / C;   dw = Σ_rows g · x · r
 *
 * layerNorm, composed from primitive ops (its backward comes free):
 *   y = (x − mean) / sqrt(var + eps) · w + b        (biased variance)
 */
import { record } from '../autograd.ts';
import { Tensor } from '../tensor.ts';
import { formatShape } from '../shape.ts';
import { GraphBuilder } from '../native/graph.ts';
import { nativeKernel } from '../native/session.ts';

type Float = 'float32' | 'float64';

function forwardGraph(dtype: Float): Uint8Array {
  const g = new GraphBuilder('rms_norm_forward', dtype);
  const [x, w, eps] = ['x', 'w', 'eps'].map((n) => g.input(n));
  const meanSquare = g.node('ReduceMean', [g.node('Mul', [x, x])], { axes: [-1], keepdims: 1 });
  const inverse = g.node('Reciprocal', [g.node('Sqrt', [g.node('Add', [meanSquare, eps])])]); // [..., 1]
  g.output(g.node('Mul', [w, g.node('Mul', [x, inverse])]));
  g.output(inverse);
  return g.build();
}

/** dx, and dw when the weight trains (a frozen norm, as under LoRA, skips the column sum). */
function backwardGraph(dtype: Float, weightGrad: boolean): Uint8Array {
  const g = new GraphBuilder('rms_norm_backward', dtype);
  const [grad, x, w, inverse, size] = ['grad', 'x', 'w', 'inverse', 'size'].map((n) => g.input(n));
  const gw = g.node('Mul', [grad, w]);
  const dot = g.node('ReduceSum', [g.node('Mul', [gw, x]), g.int64Constant([-1])], { keepdims: 1 });
  const cubed = g.node('Mul', [g.node('Mul', [inverse, inverse]), inverse]);
  const k = g.node('Div', [g.node('Mul', [cubed, dot]), size]);
  g.output(g.node('Sub', [g.node('Mul', [gw, inverse]), g.node('Mul', [x, k])]));
  if (weightGrad) {
    const rows = g.node('Reshape', [g.node('Mul', [grad, g.node('Mul', [x, inverse])]), g.input('rows_shape', 'int64')]); // [-1, C]
    g.output(g.node('ReduceSum', [rows, g.int64Constant([0])], { keepdims: 0 }));
  }
  return g.build();
}

export function rmsNorm(x: Tensor, weight: Tensor | null, eps: number): Tensor {
  const size = x.shape[x.ndim - 1];
  if (weight !== null && (weight.ndim !== 1 || weight.shape[0] !== size || weight.dtype !== x.dtype)) {
    throw new Error(`rmsNorm: weight ${formatShape(weight.shape)} ${weight.dtype} does not fit input ${formatShape(x.shape)} ${x.dtype}`);
  }
  const dtype = x.dtype as Float;
  const w = weight ?? Tensor.ones([size], dtype);
  const [y, inverse] = nativeKernel(`rms_norm_forward:${dtype}`, dtype, () => forwardGraph(dtype)).run([x, w, Tensor.scalar(eps, dtype)]);
  const weightGrad = weight?.requiresGrad ?? false;
  let grads: Tensor[] | null = null;
  const gradsFor = (g: Tensor) =>
    (grads ??= nativeKernel(`rms_norm_backward:${dtype}:${weightGrad}`, dtype, () => backwardGraph(dtype, weightGrad)).run([
      g, x, w, inverse, Tensor.scalar(size, dtype), ...(weightGrad ? [Tensor.fromArray([-1, size], 'int64')] : []),
    ]));
  return record('rmsNorm', y, weight === null ? [x] : [x, weight], (g) => [() => gradsFor(g)[0], weightGrad ? () => gradsFor(g)[1] : null]);
}

export function layerNorm(x: Tensor, weight: Tensor | null, bias: Tensor | null, eps: number): Tensor {
  const centered = x.sub(x.mean(-1, true));
  const variance = centered.pow(2).mean(-1, true);
  let y = centered.mul(variance.add(eps).rsqrt());
  if (weight !== null) y = y.mul(weight);
  if (bias !== null) y = y.add(bias);
  return y;
}
