/**
 * Decoder self-attention as Llama-family models compute it, fused on the
 * native runtime: head split, rotary positions, a key/value cache,
 * grouped-query heads, softmax and head merge in one graph each way.
 *
 *   q [B, T, H·D], k/v [B, T, Hkv·D], past k/v [B, Hkv, P, D] (P may be 0)
 *   cos/sin [B|1, 1, T, R], bias [B|1, 1, T, P+T] (see attentionBias)
 *   qh = rope(q as [B, H, T, D]);  kh = cat(pastK, rope(k));  vh = cat(pastV, v)
 *   rope turns the first R = rotaryDim of each head's D dims (R < D: partial rotary, phi3) and keeps the rest
 *   grouped-query: the G = H/Hkv query heads of one key head are adjacent, so
 *   q as [B, Hkv, G·T, D] meets k [B, Hkv, S, D] with no copies of k or v
 *   out = softmax(cap((scale·qh)·khᵀ) + bias)·vh  -> [B, T, H·D]
 *   cap(x) = c·tanh(x/c) with softcap c (gemma2's attn_logit_softcapping), else x
 *   (a query row that sees no key outputs zeros, as in ops/attention.ts: its output
 *   row and its incoming gradient row are zeroed, [G·T, D] work instead of [G·T, S];
 *   with unseenRows 'uniform' it keeps the softmax of equal scores, the mean of all
 *   values, as transformers' eager attention computes it)
 *   causal blocks (a forward with no cache, a causal mask, T ≥ 128): positions [t0, t1)
 *   as [B, Hkv, G, t1−t0, D] meet only the keys [0, t1) they can see, so 8 blocks do
 *   9/16 of the square's work (at SmolLM2's 4×512: attention 1.5x faster each way);
 *   the masked keys they skip weighed exactly 0 in the softmax
 *
 * Backward: the probabilities kept from the forward when they are small, else
 * recomputed from qh and kh (FlashAttention's trade: one more q·kᵀ instead of
 * keeping a T×T tensor per layer), then the
 * attention gradients of ops/attention.ts (with Σ_s dP·P taken
 * as Σ_d dO·O, a reduction over D rather than S), then rope's transpose
 * (rotation by −θ: rope with −sin) and the head merge undone. With a softcap the
 * score gradient goes through cap' = 1 − tanh²(x/c), the raw scores recomputed. The
 * cache is a constant: only the new positions' k and v get gradients.
 */
import { isGradEnabled, noteInputs, record } from '../autograd.ts';
import { Tensor } from '../tensor.ts';
import { formatShape } from '../shape.ts';
import { GraphBuilder } from '../native/graph.ts';
import { nativeKernel } from '../native/session.ts';
import { expand, reshape } from './layout.ts';
import { visibleRows } from './attention.ts';
import { causalBlocks } from './causal-blocks.ts';
import { activeTrace, traceOp } from '../compile/trace.ts';

type Float = 'float32' | 'float64';

interface Heads {
  heads: number;
  kvHeads: number;
  headDim: number;
}

/**
 * The graph's shape: the heads, how many dims rope turns, whether scores are soft-capped, and in how many
 * causal blocks of query positions the scores are computed (1: the whole square).
 */
interface Dims extends Heads {
  rotaryDim: number;
  softcap: boolean;
  blocks: number;
}

const SWAP_LAST = [0, 1, 3, 2];
/** Transpose's perm swapping the last two axes of a tensor of this rank. */
const swapLast = (rank: number) => (rank === 4 ? SWAP_LAST : [0, 1, 2, 4, 3]);
const SWAP_TIME_HEADS = [0, 2, 1, 3];

/** Graph helpers shared by both directions. */
class AttentionGraph extends GraphBuilder {
  constructor(name: string, dtype: Float, readonly dims: Dims) {
    super(name, dtype);
  }

  /** [B, T, n·D] -> [B, n, T, D] */
  splitHeads(x: string): string {
    return this.node('Transpose', [this.node('Reshape', [x, this.int64Constant([0, 0, -1, this.dims.headDim])])], { perm: SWAP_TIME_HEADS });
  }

  /** [B, n, T, D] -> [B, T, n·D] */
  mergeHeads(x: string, heads: number): string {
    const swapped = this.node('Transpose', [x], { perm: SWAP_TIME_HEADS });
    return this.node('Reshape', [swapped, this.int64Constant([0, 0, heads * this.dims.headDim])]);
  }

  /** x·cos + rotateHalf(x)·sin, rotateHalf([x1, x2]) = [−x2, x1], on the first rotaryDim dims; the rest pass */
  rope(x: string, cos: string, sin: string): string {
    const { headDim, rotaryDim } = this.dims;
    if (rotaryDim === headDim) return this.rotate(x, cos, sin);
    const [turned, kept] = this.nodeWithOutputs('Split', [x, this.int64Constant([rotaryDim, headDim - rotaryDim])], 2, { axis: -1 });
    return this.node('Concat', [this.rotate(turned, cos, sin), kept], { axis: -1 });
  }

  private rotate(x: string, cos: string, sin: string): string {
    const half = this.dims.rotaryDim / 2;
    const [x1, x2] = this.nodeWithOutputs('Split', [x, this.int64Constant([half, half])], 2, { axis: -1 });
    const rotated = this.node('Concat', [this.node('Neg', [x2]), x1], { axis: -1 });
    return this.node('Add', [this.node('Mul', [x, cos]), this.node('Mul', [rotated, sin])]);
  }

  /** (scale·qh)·khᵀ [B, Hkv, G·T, S] (or a block's [B, Hkv, G, Tj, Sj]), before any cap */
  rawScores(qh: string, kh: string, rank = 4): string {
    return this.node('MatMul', [qh, this.transposeLast(kh, rank)]);
  }

  transposeLast(x: string, rank: number): string {
    return this.node('Transpose', [x], { perm: swapLast(rank) });
  }

  /** [B, Hkv, G·T, X] -> [B, Hkv, G, T, X]: rows by group head and position (X the last size, or null: x's own) */
  byPosition(x: string, last: number | null): string {
    const groups = this.int64Constant([0, 0, this.dims.heads / this.dims.kvHeads, -1]);
    const lastSize = last !== null ? this.int64Constant([last]) : this.node('Slice', [this.node('Shape', [x]), this.int64Constant([3]), this.int64Constant([4])]);
    return this.node('Reshape', [x, this.node('Concat', [groups, lastSize], { axis: 0 })]);
  }

  /** x's entries [from, to) on `axis` (from and to: int64 [1] inputs or constants) */
  range(x: string, from: string, to: string, axis: number): string {
    return this.node('Slice', [x, from, to, this.int64Constant([axis])]);
  }

  /** c·tanh(x/c) with c the `softcap` input, or x */
  capped(raw: string, softcap: string): string {
    return this.dims.softcap ? this.node('Mul', [this.capTanh(raw, softcap), softcap]) : raw;
  }

  capTanh(raw: string, softcap: string): string {
    return this.node('Tanh', [this.node('Div', [raw, softcap])]);
  }

  /** [B, H, T, D] <-> [B, Hkv, G·T, D] */
  grouped(x: string): string {
    return this.node('Reshape', [x, this.int64Constant([0, this.dims.kvHeads, -1, this.dims.headDim])]);
  }

  ungrouped(x: string): string {
    return this.node('Reshape', [x, this.int64Constant([0, this.dims.heads, -1, this.dims.headDim])]);
  }
}

/**
 * What the forward keeps for the backward: nothing (inference), qh and og with
 * the probabilities recomputed later, or those and the probabilities too.
 */
type Keep = 'nothing' | 'recompute' | 'probabilities';

/** Probabilities up to this size are kept (faster); larger ones are recomputed (a T×T tensor per layer saved). */
const KEEP_PROBABILITIES_BYTES = 16 * 2 ** 20;

function forwardGraph(dtype: Float, dims: Dims, keep: Keep): Uint8Array {
  const g = new AttentionGraph('rotary_attention_forward', dtype, dims);
  const [q, k, v, pastK, pastV, cos, sin, bias, visible, scale, softcap] = ['q', 'k', 'v', 'past_k', 'past_v', 'cos', 'sin', 'bias', 'visible', 'scale', 'softcap'].map((n) => g.input(n));
  const qh = g.node('Mul', [g.grouped(g.rope(g.splitHeads(q), cos, sin)), scale]); // scaled here, on [B, Hkv, G·T, D] rather than the scores
  const kh = g.node('Concat', [pastK, g.rope(g.splitHeads(k), cos, sin)], { axis: 2 }); // [B, Hkv, S, D]
  const vh = g.node('Concat', [pastV, g.splitHeads(v)], { axis: 2 });
  const parts = queryParts(g, qh, kh, vh, bias, visible);
  const attended = parts.map((p) => attend(g, p, softcap));
  const og = joinParts(g, attended.map((a) => a.out)); // [B, Hkv, G·T, D]
  g.output(g.mergeHeads(g.ungrouped(og), dims.heads));
  const kept = { nothing: [kh, vh], recompute: [kh, vh, qh, og], probabilities: [kh, vh, qh, og, ...attended.map((a) => a.probs)] }[keep];
  for (const name of kept) g.output(name);
  return g.build();
}

/**
 * The rows of queries whose scores are computed together, with the keys, values, mask and visible rows they
 * meet: the whole square ([B, Hkv, G·T, ·] against all S keys), or, for causal masks, blocks of positions
 * [from, to) as [B, Hkv, G, Tj, ·] against the keys [0, keysTo) they can see. Blocks skip the masked upper
 * triangle: with 4 blocks, 10/16 of the square's work.
 */
interface QueryPart {
  rank: 4 | 5;
  q: string;
  k: string;
  v: string;
  bias: string;
  visible: string;
  /** A block's query positions [from, to) (int64 [1] inputs). */
  from?: string;
  to?: string;
}

function queryParts(g: AttentionGraph, qh: string, kh: string, vh: string, bias: string, visible: string): QueryPart[] {
  const { blocks, headDim } = g.dims;
  if (blocks === 1) return [{ rank: 4, q: qh, k: kh, v: vh, bias, visible }];
  const zero = g.int64Constant([0]);
  const [q5, k5, v5] = [g.byPosition(qh, headDim), g.node('Unsqueeze', [kh, g.int64Constant([2])]), g.node('Unsqueeze', [vh, g.int64Constant([2])])];
  const [bias5, visible5] = [g.byPosition(bias, null), g.byPosition(visible, 1)]; // [B|1, 1, G, T, S], [B|1, 1, G, T, 1]
  return Array.from({ length: blocks }, (_, j) => {
    const [from, to, keysTo] = [`block_${j}_from`, `block_${j}_to`, `block_${j}_keys`].map((n) => g.input(n, 'int64'));
    const rows = (x: string) => g.range(x, from, to, 3);
    const keys = (x: string) => g.range(x, zero, keysTo, 3);
    return { rank: 5, q: rows(q5), k: keys(k5), v: keys(v5), bias: g.range(rows(bias5), zero, keysTo, 4), visible: rows(visible5), from, to };
  });
}

/** The parts' rows back in order: [B, Hkv, G·T, D]. */
function joinParts(g: AttentionGraph, outs: string[]): string {
  if (outs.length === 1) return outs[0];
  return g.node('Reshape', [g.node('Concat', outs, { axis: 3 }), g.int64Constant([0, g.dims.kvHeads, -1, g.dims.headDim])]);
}

/** probs = softmax(cap(q·kᵀ) + bias); out = probs·v, 0 on rows that see no key */
function attend(g: AttentionGraph, p: QueryPart, softcap: string): { probs: string; out: string } {
  const probs = g.node('Softmax', [g.node('Add', [g.capped(g.rawScores(p.q, p.k, p.rank), softcap), p.bias])], { axis: -1 });
  return { probs, out: g.node('Mul', [g.node('MatMul', [probs, p.v]), p.visible]) };
}

function backwardGraph(dtype: Float, dims: Dims, keep: Keep): Uint8Array {
  const g = new AttentionGraph('rotary_attention_backward', dtype, dims);
  const [dOut, qh, kh, vh, og, bias, visible, cos, sin, scale, softcap, newFrom] = ['d_out', 'qh', 'kh', 'vh', 'og', 'bias', 'visible', 'cos', 'sin', 'scale', 'softcap', 'new_from'].map((n) =>
    g.input(n, n === 'new_from' ? 'int64' : undefined),
  );
  const dO = g.node('Mul', [g.grouped(g.splitHeads(dOut)), visible]); // [B, Hkv, G·T, D]; no gradient through rows that see no key
  // Σ_s dP·P = Σ_d dO·O (FlashAttention's identity): a reduction over D instead of S.
  const rowDot = g.node('ReduceSum', [g.node('Mul', [dO, og]), g.int64Constant([-1])], { keepdims: 1 });
  const parts = queryParts(g, qh, kh, vh, bias, visible);
  const rowsOf = (x: string, last: number) => (dims.blocks === 1 ? [x] : parts.map((p) => g.range(g.byPosition(x, last), p.from!, p.to!, 3)));
  const [dOParts, rowDotParts] = [rowsOf(dO, dims.headDim), rowsOf(rowDot, 1)];
  const grads = parts.map((p, j) => attendBackward(g, p, dOParts[j], rowDotParts[j], keep === 'probabilities' ? g.input(`probs_${j}`) : null, softcap));
  const dQ = g.node('Mul', [joinParts(g, grads.map((d) => d.dQ)), scale]);
  // A block's dK and dV cover the keys it sees, [0, keysTo): padded with zeros to all S keys, then summed.
  const pads = dims.blocks === 1 ? [] : parts.map((_, j) => g.input(`block_${j}_pad`, 'int64'));
  const [dK, dV] = (['dK', 'dV'] as const).map((name) => (grads.length === 1 ? grads[0][name] : g.node('Sum', grads.map((d, j) => g.node('Pad', [d[name], pads[j]])))));
  const newPositions = (x: string) => g.node('Slice', [x, newFrom, g.int64Constant([Number.MAX_SAFE_INTEGER]), g.int64Constant([2])]);
  const minusSin = g.node('Neg', [sin]);
  g.output(g.mergeHeads(g.rope(g.ungrouped(dQ), cos, minusSin), dims.heads));
  g.output(g.mergeHeads(g.rope(newPositions(dK), cos, minusSin), dims.kvHeads));
  g.output(g.mergeHeads(newPositions(dV), dims.kvHeads));
  return g.build();
}

/**
 * One part's gradients from dO and rowDot of its rows: dQ (before the scale), and dK, dV of the keys it sees
 * ([B, Hkv, Sj, D]: a block's group axis summed). The probabilities kept, or recomputed from q and k.
 */
function attendBackward(g: AttentionGraph, p: QueryPart, dO: string, rowDot: string, kept: string | null, softcap: string): { dQ: string; dK: string; dV: string } {
  const raw = kept === null || g.dims.softcap ? g.rawScores(p.q, p.k, p.rank) : null;
  const probs = kept ?? g.node('Softmax', [g.node('Add', [g.capped(raw!, softcap), p.bias])], { axis: -1 });
  const groupSummed = (x: string) => (p.rank === 4 ? x : g.node('ReduceSum', [x, g.int64Constant([2])], { keepdims: 0 }));
  const dV = groupSummed(g.node('MatMul', [g.transposeLast(probs, p.rank), dO]));
  const dP = g.node('MatMul', [dO, g.transposeLast(p.v, p.rank)]);
  const dCapped = g.node('Mul', [g.node('Sub', [dP, rowDot]), probs]);
  const dS = g.dims.softcap ? uncapped(g, dCapped, g.capTanh(raw!, softcap)) : dCapped; // gradient of the raw scores
  const dK = groupSummed(g.node('MatMul', [g.transposeLast(dS, p.rank), p.q])); // q carries the scale
  return { dQ: g.node('MatMul', [dS, p.k]), dK, dV };
}

/** d/dx of c·tanh(x/c) is 1 − tanh²(x/c). */
function uncapped(g: AttentionGraph, dCapped: string, tanh: string): string {
  const oneMinusSquare = g.node('Sub', [g.scalar(1), g.node('Mul', [tanh, tanh])]);
  return g.node('Mul', [dCapped, oneMinusSquare]);
}

export interface RotaryAttentionOptions extends Heads {
  /** [B|1, 1, T, rotaryDim]: rope turns the first rotaryDim dims of each head (default headDim) */
  cos: Tensor;
  sin: Tensor;
  rotaryDim?: number;
  /** Scores become c·tanh(scores/c) before the mask (gemma2's attn_logit_softcapping). */
  softcap?: number | null;
  /**
   * What a query that sees no key (a left-padding position) outputs: zeros (PyTorch's sdpa, transformers'
   * default), or the mean of all values (transformers' eager attention, which gemma2 needs for its cap).
   */
  unseenRows?: 'zero' | 'uniform';
  /** Additive mask [B|1, 1, T, P+T] from attentionBias. */
  bias: Tensor;
  pastKey?: Tensor | null;
  pastValue?: Tensor | null;
  scale?: number;
  /**
   * Causal blocks of query positions (default: one per 64 positions, at most 8, when there is no cache and the
   * mask is causal; 1 computes the whole square). A mask that is not causal for the blocks gets the whole square.
   */
  queryBlocks?: number;
}

export interface RotaryAttentionResult {
  out: Tensor; // [B, T, H·D]
  /** The cache after this step: past and new positions, rotated. */
  key: Tensor; // [B, Hkv, P+T, D]
  value: Tensor;
}

/** The mask repeated for each query head of a group: [B|1, 1, T, S] -> [B|1, 1, G·T, S] (remembered per mask, except while tracing). */
const groupedBiases = new WeakMap<Tensor, Map<number, Tensor>>();
function groupedBias(bias: Tensor, groups: number): Tensor {
  const tracing = activeTrace() !== null; // a traced layer makes its own, from its own mask input
  const byGroups = (tracing ? undefined : groupedBiases.get(bias)) ?? new Map<number, Tensor>();
  if (!tracing) groupedBiases.set(bias, byGroups);
  let tiled = byGroups.get(groups);
  if (tiled === undefined) {
    const [b, , t, s] = bias.shape;
    tiled = reshape(expand(reshape(bias, [b, 1, 1, t, s]), [b, 1, groups, t, s]), [b, 1, groups * t, s]);
    byGroups.set(groups, tiled);
  }
  return tiled;
}

function checkShapes(q: Tensor, k: Tensor, v: Tensor, past: Tensor, o: RotaryAttentionOptions): void {
  const [b, t] = q.shape;
  const { heads, kvHeads, headDim } = o;
  const rotaryDim = o.rotaryDim ?? headDim;
  const ok =
    q.ndim === 3 && q.shape[2] === heads * headDim && heads % kvHeads === 0 && rotaryDim % 2 === 0 && rotaryDim > 0 && rotaryDim <= headDim &&
    [k, v].every((x) => x.ndim === 3 && x.shape[0] === b && x.shape[1] === t && x.shape[2] === kvHeads * headDim) &&
    [o.cos, o.sin].every((c) => c.ndim === 4 && [1, b].includes(c.shape[0]) && c.shape[2] === t && c.shape[3] === rotaryDim) &&
    past.ndim === 4 && past.shape[0] === b && past.shape[1] === kvHeads && past.shape[3] === headDim &&
    o.bias.ndim === 4 && [1, b].includes(o.bias.shape[0]) && o.bias.shape[2] === t && o.bias.shape[3] === past.shape[2] + t;
  if (!ok) {
    const shapes = [q, k, v, past, o.cos, o.bias].map((x) => formatShape(x.shape)).join(', ');
    throw new Error(`rotaryAttention: shapes q, k, v, past, cos, bias = ${shapes} do not fit ${heads} heads, ${kvHeads} key/value heads of ${headDim} (${rotaryDim} rotated)`);
  }
}

/** [B|1, 1, G·T, 1] ones: every row kept. */
function everyRow(bias: Tensor): Tensor {
  const rows = Tensor.ones([...bias.shape.slice(0, 3), 1], bias.dtype as Float);
  traceOp('everyRow', [bias], [rows], (g, [b]) => [g.node('Expand', [g.scalar(1), g.node('Shape', [g.node('ReduceMax', [b], { axes: [-1], keepdims: 1 })])])]);
  return rows;
}

export function rotaryAttention(q: Tensor, k: Tensor, v: Tensor, options: RotaryAttentionOptions): RotaryAttentionResult {
  const { heads, kvHeads, headDim, cos, sin, bias } = options;
  const dtype = q.dtype as Float;
  const empty = Tensor.zeros([q.shape[0], kvHeads, 0, headDim], dtype);
  const pastKey = options.pastKey ?? empty;
  const pastValue = options.pastValue ?? empty;
  checkShapes(q, k, v, pastKey, options);
  const [batch, queries] = q.shape;
  const past = pastKey.shape[2];
  const blocks = causalBlocks(queries, past, options);
  const dims: Dims = { heads, kvHeads, headDim, rotaryDim: options.rotaryDim ?? headDim, softcap: (options.softcap ?? null) !== null, blocks: blocks.length };
  const key = `${dtype}:${heads}:${kvHeads}:${headDim}:${dims.rotaryDim}:${dims.softcap}:${blocks.length}`;
  const scale = Tensor.scalar(options.scale ?? 1 / Math.sqrt(headDim), dtype);
  const softcap = Tensor.scalar(options.softcap ?? 1, dtype);
  const training = isGradEnabled() && [q, k, v].some((t) => t.requiresGrad);
  const scores = blocks.reduce((n, b) => n + (b.to - b.from) * b.keys, 0); // per batch row and head
  const keep: Keep = !training ? 'nothing' : batch * heads * scores * (dtype === 'float32' ? 4 : 8) <= KEEP_PROBABILITIES_BYTES ? 'probabilities' : 'recompute';
  const forward = nativeKernel(`rotary_attention_forward:${key}:${keep}`, dtype, () => forwardGraph(dtype, dims, keep), { arena: true });
  const grouped = groupedBias(bias, heads / kvHeads);
  const visible = options.unseenRows === 'uniform' ? everyRow(grouped) : visibleRows(grouped);
  const int64 = (...values: number[]) => Tensor.fromArray(values, 'int64');
  const blockInputs = blocks.length === 1 ? [] : blocks.flatMap((b) => [int64(b.from), int64(b.to), int64(b.keys)]);
  const [out, kh, vh, qh, og, ...probs] = forward.run([q, k, v, pastKey, pastValue, cos, sin, grouped, visible, scale, softcap, ...blockInputs]);
  if (keep === 'nothing') {
    noteInputs([q, k, v]); // a checkpoint's no-grad forward must still see a trainable q, k or v
    return { out, key: kh, value: vh };
  }
  let grads: Tensor[] | null = null;
  const gradsFor = (dOut: Tensor) => {
    const backward = nativeKernel(`rotary_attention_backward:${key}:${keep}`, dtype, () => backwardGraph(dtype, dims, keep), { arena: true });
    const pads = blocks.length === 1 ? [] : blocks.map((b) => int64(0, 0, 0, 0, 0, 0, past + queries - b.keys, 0)); // [B, Hkv, keys, D] -> [B, Hkv, S, D]
    return (grads ??= backward.run([dOut, qh, kh, vh, og, grouped, visible, cos, sin, scale, softcap, int64(past), ...blockInputs, ...(keep === 'probabilities' ? probs : []), ...pads]));
  };
  record('rotaryAttention', out, [q, k, v], (dOut) => [() => gradsFor(dOut)[0], () => gradsFor(dOut)[1], () => gradsFor(dOut)[2]]);
  return { out, key: kh, value: vh };
}
