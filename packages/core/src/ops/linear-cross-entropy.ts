/**
 * The output head and the cross-entropy in one op, chunked over rows, on the
 * native runtime: the [N, V] logits exist only inside a graph, one chunk of
 * rows at a time, and never in JavaScript memory.
 *
 *   hidden [N, C], weight [V, C], targets [N] (int, ignoreIndex skipped) -> scalar
 *   z = cap(hidden·weightᵀ / divisor)        cap(x) = c·tanh(x/c) with softcap c, else x
 *   loss = (1/M) Σ_{t_n ≠ ignore} (logsumexp(z_n) − z_n[t_n])          M = targets counted
 *
 * Backward, per chunk:
 *   dz_n = g/M · (softmax(z_n) − onehot(t_n))   (0 for ignored rows)
 *   through the cap: · (1 − tanh²(x/c)); through the divisor: / divisor
 *   dhidden = dz·weight;  dweight = dzᵀ·hidden  (only when the weight trains)
 * With a frozen weight (LoRA's head) the forward computes dhidden for g = 1 while
 * the chunk's logits are at hand, and the backward only multiplies it by g; a
 * weight that trains has its logits recomputed in the backward instead (one more
 * matmul rather than keeping [N, V]).
 *
 * Equal to crossEntropy(matmul(hidden, weight, { transposeB: true }) ...) up to
 * float rounding; what a causal LM's loss needs without its logits.
 */
import { isGradEnabled, record } from '../autograd.ts';
import { Tensor } from '../tensor.ts';
import { formatShape } from '../shape.ts';
import { GraphBuilder } from '../native/graph.ts';
import { nativeKernel } from '../native/session.ts';
import { slice } from './layout.ts';
import { add } from './binary.ts';
import { targetIds } from './loss.ts';

type Float = 'float32' | 'float64';

export interface LinearCrossEntropyOptions {
  ignoreIndex?: number;
  /** The logits are divided by it (granite's logits_scaling). */
  divisor?: number;
  /** Then soft-capped as c·tanh(x/c) (gemma2's final_logit_softcapping). */
  softcap?: number | null;
  /** Rows per native call: by default as many as keep a chunk's logits near 64 MiB. */
  chunkRows?: number;
}

/** Graph helpers shared by both directions: the chunk's logits from its inputs. */
class HeadGraph extends GraphBuilder {
  constructor(name: string, dtype: Float, readonly capped: boolean) {
    super(name, dtype);
  }

  /** [n, C]·[V, C]ᵀ / divisor -> [n, V], before the cap */
  scaled(hidden: string, weight: string, divisor: string): string {
    return this.node('Div', [this.node('MatMul', [hidden, this.node('Transpose', [weight], { perm: [1, 0] })]), divisor]);
  }

  /** tanh(x/c) */
  tanh(x: string, cap: string): string {
    return this.node('Tanh', [this.node('Div', [x, cap])]);
  }

  logits(x: string, cap: string): string {
    return this.capped ? this.node('Mul', [this.tanh(x, cap), cap]) : x;
  }

  /** [n, V], [n] -> [n, 1]: each row's value at its target */
  picked(z: string, targets: string): string {
    return this.node('GatherElements', [z, this.node('Unsqueeze', [targets, this.int64Constant([1])])], { axis: 1 });
  }
}

/** [n] −log softmax(z)[t], from z [n, V] */
function rowLoss(g: HeadGraph, logSoftmax: string, targets: string): string {
  return g.node('Neg', [g.node('Squeeze', [g.picked(logSoftmax, targets), g.int64Constant([1])])]);
}

/** dhidden [n, C] (and dweight [V, C] when the weight trains) from probs [n, V]; rowScale [n] is g/M for counted rows, 0 for the others */
function emitGradients(g: HeadGraph, probs: string, x: string, hidden: string, weight: string, targets: string, rowScale: string, divisor: string, cap: string, weightTrains: boolean): void {
  const scale = g.node('Unsqueeze', [rowScale, g.int64Constant([1])]); // [n, 1]
  const dzScaled = g.node('Mul', [probs, scale]);
  const atTarget = g.node('Sub', [g.picked(dzScaled, targets), scale]); // p[t]·s − s
  const column = g.node('Unsqueeze', [targets, g.int64Constant([1])]);
  let dz = g.node('ScatterElements', [dzScaled, column, atTarget], { axis: 1 });
  if (g.capped) {
    const tanh = g.tanh(x, cap);
    dz = g.node('Mul', [dz, g.node('Sub', [g.scalar(1), g.node('Mul', [tanh, tanh])])]);
  }
  dz = g.node('Div', [dz, divisor]);
  g.output(g.node('MatMul', [dz, weight]));
  if (weightTrains) g.output(g.node('MatMul', [g.node('Transpose', [dz], { perm: [1, 0] }), hidden]));
}

/**
 * rowLoss [n] = −log softmax(z)[t] · counted; with `withGradient`, also dhidden [n, C] for rowScale [n]
 * (the weight frozen: what the backward scales by g).
 */
function forwardGraph(dtype: Float, capped: boolean, withGradient: boolean): Uint8Array {
  const g = new HeadGraph('linear_cross_entropy_forward', dtype, capped);
  const [hidden, weight, targets, counted, divisor, cap] = [g.input('hidden'), g.input('weight'), g.input('targets', 'int64'), g.input('counted'), g.input('divisor'), g.input('cap')];
  const x = g.scaled(hidden, weight, divisor);
  const logSoftmax = g.node('LogSoftmax', [g.logits(x, cap)], { axis: 1 });
  g.output(g.node('Mul', [rowLoss(g, logSoftmax, targets), counted]));
  if (withGradient) emitGradients(g, g.node('Exp', [logSoftmax]), x, hidden, weight, targets, g.input('row_scale'), divisor, cap, false);
  return g.build();
}

/** The backward of a chunk, its logits recomputed: dhidden (and dweight) for rowScale [n]. */
function backwardGraph(dtype: Float, capped: boolean, weightTrains: boolean): Uint8Array {
  const g = new HeadGraph('linear_cross_entropy_backward', dtype, capped);
  const [hidden, weight, targets, rowScale, divisor, cap] = [g.input('hidden'), g.input('weight'), g.input('targets', 'int64'), g.input('row_scale'), g.input('divisor'), g.input('cap')];
  const x = g.scaled(hidden, weight, divisor);
  emitGradients(g, g.node('Softmax', [g.logits(x, cap)], { axis: 1 }), x, hidden, weight, targets, rowScale, divisor, cap, weightTrains);
  return g.build();
}

const CHUNK_BYTES = 64 * 2 ** 20;

interface Chunk {
  hidden: Tensor; // [n, C]
  targets: Tensor; // [n] int64, ignored ones as 0
  counted: Int32Array; // [n] 1 for a counted row, 0 for an ignored one
}

export function linearCrossEntropy(hidden: Tensor, weight: Tensor, targets: Tensor, options: LinearCrossEntropyOptions = {}): Tensor {
  const { ignoreIndex = -100, divisor = 1, softcap = null } = options;
  if (hidden.ndim !== 2 || weight.ndim !== 2 || hidden.shape[1] !== weight.shape[1] || hidden.dtype !== weight.dtype) {
    throw new Error(`linearCrossEntropy: hidden ${formatShape(hidden.shape)} and weight ${formatShape(weight.shape)} must be [N, C] and [V, C] of one float dtype`);
  }
  const [rows, classes] = [hidden.shape[0], weight.shape[0]];
  const dtype = hidden.dtype as Float;
  const ids = targetIds(targets, rows, classes, ignoreIndex, 'linearCrossEntropy');
  const counted = ids.reduce((n, id) => n + (id === ignoreIndex ? 0 : 1), 0);
  const chunk = options.chunkRows ?? Math.max(1, Math.floor(CHUNK_BYTES / (classes * (dtype === 'float32' ? 4 : 8))));
  const capped = softcap !== null;
  const scalars = [Tensor.scalar(divisor, dtype), Tensor.scalar(softcap ?? 1, dtype)];
  const chunks: Chunk[] = Array.from({ length: Math.ceil(rows / chunk) }, (_, i) => {
    const [start, end] = [i * chunk, Math.min(rows, (i + 1) * chunk)];
    const part = ids.subarray(start, end);
    return {
      hidden: slice(hidden.detach(), 0, start, end),
      targets: new Tensor(BigInt64Array.from(part, (id) => BigInt(id === ignoreIndex ? 0 : id)), [end - start]),
      counted: part.map((id) => (id === ignoreIndex ? 0 : 1)),
    };
  });
  const weightTrains = weight.requiresGrad;
  const gradientNow = isGradEnabled() && hidden.requiresGrad && !weightTrains;
  const forward = nativeKernel(`linear_cross_entropy_forward:${dtype}:${capped}:${gradientNow}`, dtype, () => forwardGraph(dtype, capped, gradientNow), { arena: true });
  const rowScale = (c: Chunk, perRow: number) => new Tensor(Float64Array.from(c.counted, (k) => k * perRow), [c.counted.length]).to(dtype);
  let total = 0;
  /** Per chunk, dhidden for an upstream gradient of 1 (only when gradientNow). */
  const unitGradients: Tensor[] = [];
  for (const c of chunks) {
    const [rowLoss, dHidden] = forward.run([c.hidden, weight, c.targets, rowScale(c, 1), ...scalars, ...(gradientNow ? [rowScale(c, 1 / counted)] : [])]);
    for (const v of rowLoss.values) total += v;
    if (gradientNow) unitGradients.push(dHidden);
  }
  // NOTE: like PyTorch, a batch whose targets are all ignored gives NaN (0/0).
  const out = Tensor.scalar(total / counted, dtype);
  let grads: { hidden: Tensor; weight: Tensor | null } | null = null;
  const gradsFor = (g: Tensor) => {
    if (grads !== null) return grads;
    const upstream = g.item();
    const backward = () => nativeKernel(`linear_cross_entropy_backward:${dtype}:${capped}:${weightTrains}`, dtype, () => backwardGraph(dtype, capped, weightTrains), { arena: true });
    const parts = gradientNow
      ? unitGradients.map((dh) => [upstream === 1 ? dh : dh.mul(upstream)])
      : chunks.map((c) => backward().run([c.hidden, weight, c.targets, rowScale(c, upstream / counted), ...scalars]));
    const dHidden = Tensor.zeros(hidden.shape, dtype);
    parts.forEach(([dh], i) => dHidden.values.set(dh.values, i * chunk * hidden.shape[1]));
    return (grads = { hidden: dHidden, weight: weightTrains ? parts.map(([, dw]) => dw).reduce((a, b) => add(a, b)) : null });
  };
  return record('linearCrossEntropy', out, [hidden, weight], (g) => [() => gradsFor(g).hidden, weightTrains ? () => gradsFor(g).weight! : null]);
}
