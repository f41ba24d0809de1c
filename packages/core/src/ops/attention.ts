/**
 * Scaled dot-product attention, forward and backward each one native call.
 *
 *   q [B, H, T, D], k/v [B, H, S, D], bias [B|1, H|1, T, S] (additive)
 *   S = q·kᵀ·scale + bias;  P = softmax(S);  O = (P·v) · visible  -> [B, H, T, D]
 *
 * `visible` is 0 for a query row that may see no key at all (a left-padded
 * position): like PyTorch's sdpa, which transformers uses by default, such a
 * row outputs zeros rather than a uniform average.
 *
 * Backward (P is kept from the forward):
 *   dv = Pᵀ·dO;  dP = dO·vᵀ;  dS = P ⊙ (dP − Σ_s dP ⊙ P)
 *   dq = dS·k·scale;  dk = dSᵀ·q·scale
 *
 * Grouped-query attention: `repeatKv` copies each key/value head for its
 * group of query heads, as transformers does; its backward sums the group.
 */
import { record } from '../autograd.ts';
import { Tensor } from '../tensor.ts';
import { formatShape } from '../shape.ts';
import { activeTrace, traceOp } from '../compile/trace.ts';
import { GraphBuilder } from '../native/graph.ts';
import { nativeKernel } from '../native/session.ts';
import { expand, reshape } from './layout.ts';

type Float = 'float32' | 'float64';
const LOWEST_FLOAT32 = -3.4028234663852886e38;
const SWAP_LAST = [0, 1, 3, 2];

function forwardGraph(dtype: Float): Uint8Array {
  const g = new GraphBuilder('attention_forward', dtype);
  const [q, k, v, bias, visible, scale] = ['q', 'k', 'v', 'bias', 'visible', 'scale'].map((n) => g.input(n));
  const scores = g.node('Add', [g.node('Mul', [g.node('MatMul', [q, g.node('Transpose', [k], { perm: SWAP_LAST })]), scale]), bias]);
  const probs = g.node('Softmax', [scores], { axis: -1 });
  g.output(g.node('Mul', [g.node('MatMul', [probs, v]), visible])); // rows that see no key output zeros
  g.output(probs);
  return g.build();
}

function backwardGraph(dtype: Float): Uint8Array {
  const g = new GraphBuilder('attention_backward', dtype);
  const [dOut, q, k, v, probs, visible, scale] = ['dO', 'q', 'k', 'v', 'probs', 'visible', 'scale'].map((n) => g.input(n));
  const dO = g.node('Mul', [dOut, visible]); // no gradient through rows that see no key
  const dV = g.node('MatMul', [g.node('Transpose', [probs], { perm: SWAP_LAST }), dO]);
  const dP = g.node('MatMul', [dO, g.node('Transpose', [v], { perm: SWAP_LAST })]);
  const rowDot = g.node('ReduceSum', [g.node('Mul', [dP, probs]), g.int64Constant([-1])], { keepdims: 1 });
  const dS = g.node('Mul', [g.node('Sub', [dP, rowDot]), probs]);
  const dQ = g.node('Mul', [g.node('MatMul', [dS, k]), scale]);
  const dK = g.node('Mul', [g.node('MatMul', [g.node('Transpose', [dS], { perm: SWAP_LAST }), q]), scale]);
  g.output(dQ);
  g.output(dK);
  g.output(dV);
  return g.build();
}

function checkShapes(q: Tensor, k: Tensor, v: Tensor, bias: Tensor): void {
  const shapes = `q ${formatShape(q.shape)}, k ${formatShape(k.shape)}, v ${formatShape(v.shape)}, bias ${formatShape(bias.shape)}`;
  const ok =
    q.ndim === 4 && k.ndim === 4 && v.ndim === 4 && bias.ndim === 4 &&
    k.shape.every((d, i) => d === v.shape[i]) &&
    q.shape[0] === k.shape[0] && q.shape[1] === k.shape[1] && q.shape[3] === k.shape[3] &&
    [q.shape[0], 1].includes(bias.shape[0]) && [q.shape[1], 1].includes(bias.shape[1]) &&
    bias.shape[2] === q.shape[2] && bias.shape[3] === k.shape[2];
  if (!ok) throw new Error(`scaledDotProductAttention: shapes do not fit: ${shapes}`);
  if (!q.isFloat || [k, v, bias].some((t) => t.dtype !== q.dtype)) throw new Error('scaledDotProductAttention: q, k, v and bias must share one float dtype');
}

export interface AttentionOptions {
  /** Additive mask [B|1, H|1, T, S]; see `attentionBias`. Treated as a constant. */
  bias: Tensor;
  /** Defaults to 1/sqrt(D). */
  scale?: number;
}

export function scaledDotProductAttention(q: Tensor, k: Tensor, v: Tensor, { bias, scale }: AttentionOptions): Tensor {
  checkShapes(q, k, v, bias);
  const dtype = q.dtype as Float;
  const scaleTensor = Tensor.scalar(scale ?? 1 / Math.sqrt(q.shape[3]), dtype);
  const [out, probs] = nativeKernel(`attention_forward:${dtype}`, dtype, () => forwardGraph(dtype)).run([q, k, v, bias, visibleRows(bias), scaleTensor]);
  let grads: Tensor[] | null = null;
  const gradsFor = (dO: Tensor): Tensor[] =>
    (grads ??= nativeKernel(`attention_backward:${dtype}`, dtype, () => backwardGraph(dtype)).run([dO, q, k, v, probs, visibleRows(bias), scaleTensor]));
  return record('scaledDotProductAttention', out, [q, k, v], (dO) => [() => gradsFor(dO)[0], () => gradsFor(dO)[1], () => gradsFor(dO)[2]]);
}

const visibility = new WeakMap<Tensor, Tensor>();

/** [B|1, H|1, T, S] bias -> [B|1, H|1, T, 1]: 1 where the row sees at least one key (remembered per mask, except while tracing). */
export function visibleRows(bias: Tensor): Tensor {
  const tracing = activeTrace() !== null;
  let visible = tracing ? undefined : visibility.get(bias);
  if (visible === undefined) {
    const keys = bias.shape[3];
    const lowest = bias.dtype === 'float32' ? LOWEST_FLOAT32 : -Number.MAX_VALUE;
    const values = bias.values;
    const rows = Tensor.zeros([...bias.shape.slice(0, 3), 1], bias.dtype);
    rows.values.forEach((_, row) => {
      const line = values.subarray(row * keys, (row + 1) * keys);
      rows.values[row] = line.some((v) => v > lowest) ? 1 : 0;
    });
    traceOp('visibleRows', [bias], [rows], (g, [b]) => {
      const seen = g.node('Greater', [g.node('ReduceMax', [b], { axes: [-1], keepdims: 1 }), g.scalar(lowest)]);
      return [g.node('Cast', [seen], { to: 1 })]; // float32
    });
    if (!tracing) visibility.set(bias, rows);
    visible = rows;
  }
  return visible;
}

/** [B, Hkv, S, D] -> [B, Hkv·groups, S, D], each head repeated `groups` times in place. */
export function repeatKv(x: Tensor, groups: number): Tensor {
  if (groups === 1) return x;
  const [b, h, s, d] = x.shape;
  return reshape(expand(reshape(x, [b, h, 1, s, d]), [b, h, groups, s, d]), [b, h * groups, s, d]);
}

export interface AttentionBiasOptions {
  batch: number;
  queryLength: number;
  keyLength: number;
  /** Queries sit at the last `queryLength` key positions (a key/value cache before them). */
  causal: boolean;
  /** [B, S] with 1 for real tokens and 0 for padding. */
  paddingMask?: Tensor | null;
  /** Mistral's sliding window: a query sees only the last `slidingWindow` positions. */
  slidingWindow?: number | null;
  dtype?: Float;
}

/** The additive mask: 0 where a query may attend, the dtype's lowest value where not. */
export function attentionBias({ batch, queryLength, keyLength, causal, paddingMask = null, slidingWindow = null, dtype = 'float32' }: AttentionBiasOptions): Tensor {
  const lowest = dtype === 'float32' ? LOWEST_FLOAT32 : -Number.MAX_VALUE;
  if (paddingMask !== null && (paddingMask.ndim !== 2 || paddingMask.shape[0] !== batch || paddingMask.shape[1] !== keyLength)) {
    throw new Error(`attentionBias: padding mask ${formatShape(paddingMask.shape)} is not [${batch}, ${keyLength}]`);
  }
  const rows = paddingMask === null ? 1 : batch;
  const bias = Tensor.zeros([rows, 1, queryLength, keyLength], dtype);
  const values = bias.values;
  const pad = paddingMask?.toArray();
  const offset = keyLength - queryLength;
  for (let b = 0; b < rows; b++) {
    for (let t = 0; t < queryLength; t++) {
      for (let s = 0; s < keyLength; s++) {
        const query = t + offset;
        const hidden = (causal && s > query) || (slidingWindow !== null && query - s >= slidingWindow) || (pad !== undefined && pad[b * keyLength + s] === 0);
        if (hidden) values[(b * queryLength + t) * keyLength + s] = lowest;
      }
    }
  }
  return bias;
}

/**
 * attentionBias for a graph's own inputs (a causal decoder graph): mask [B, S] int64 (1 token, 0 padding),
 * `queryLength` an int64 scalar T, the queries the last T of the S positions -> [B, 1, T, S] float32.
 */
export function attentionBiasNodes(g: GraphBuilder, mask: string, queryLength: string, slidingWindow: number | null): string {
  const keyLength = g.node('Gather', [g.node('Shape', [mask]), g.int64Constant([1])], { axis: 0 }); // [1]
  const scalar = (v: string) => g.node('Squeeze', [v, g.int64Constant([0])]);
  const keys = g.node('Range', [g.int64Scalar(0), scalar(keyLength), g.int64Scalar(1)]); // [S]
  const queries = g.node('Range', [g.node('Sub', [scalar(keyLength), queryLength]), scalar(keyLength), g.int64Scalar(1)]); // [T]
  const query = g.node('Unsqueeze', [queries, g.int64Constant([1])]); // [T, 1]
  let hidden = g.node('Greater', [keys, query]); // [T, S]: a key after the query
  if (slidingWindow !== null) hidden = g.node('Or', [hidden, g.node('GreaterOrEqual', [g.node('Sub', [query, keys]), g.int64Scalar(slidingWindow)])]);
  const padding = g.node('Unsqueeze', [g.node('Equal', [mask, g.int64Scalar(0)]), g.int64Constant([1, 2])]); // [B, 1, 1, S]
  return g.node('Where', [g.node('Or', [hidden, padding]), g.float32Constant([LOWEST_FLOAT32], []), g.float32Constant([0], [])]);
}
