/**
 * A finished trace cut into the graphs a compiled block runs:
 *
 *   forward       sources -> y, saved      (saved: the forward values the backward reads)
 *   forwardOnly   sources -> y             (no gradient wanted: inference, a checkpoint's first pass)
 *   backward      dy, saved, sources -> the gradients asked for
 *   recompute     dy, sources -> the gradients asked for (the forward run again inside: checkpointing)
 *
 * Repeated values are merged first (compile/repeats.ts). What is saved is kept small: a value that a view or an
 * elementwise op makes from values saved anyway (or from smaller ones) is made again in the backward instead,
 * since every saved byte is copied out of onnxruntime and into fresh memory. Each graph keeps only the nodes its
 * outputs need, and the sources and constants those nodes read.
 */
import { modelBytes, type ElemType, type GraphConstant, type GraphNode } from '../native/graph.ts';
import { mergeRepeats } from './repeats.ts';
import type { Trace } from './trace.ts';

export interface Graph {
  bytes: Uint8Array;
  /** The sources (and for the backward: 'dy' and the saved values) in input order. */
  inputs: string[];
}

export interface Plan {
  forward: Graph;
  forwardOnly: Graph;
  /** null when nothing in the block needs a gradient. */
  backward: Graph | null;
  /** The backward with the forward's nodes it reads, from the sources alone (checkpointing: nothing saved). */
  recompute: Graph | null;
  /** The forward's outputs after y, in order: the backward's inputs after dy. */
  saved: string[];
  /** Which of the gradients asked for the backward outputs, in order (null: no gradient reached it). */
  gradients: Array<string | null>;
}

/** The merged trace: its nodes and constants, and what the trace knows of each value. */
interface Block {
  nodes: readonly GraphNode[];
  initializers: readonly GraphConstant[];
  trace: Trace;
}

/** The nodes among `nodes` that `outputs` need, in order, and the values they read that none of them makes. */
function needed(nodes: readonly GraphNode[], outputs: readonly string[]): { kept: GraphNode[]; reads: Set<string> } {
  const wanted = new Set(outputs);
  const kept: GraphNode[] = [];
  for (let i = nodes.length - 1; i >= 0; i--) {
    const node = nodes[i];
    if (!node.output.some((o) => wanted.has(o))) continue;
    kept.push(node);
    for (const input of node.input) if (input !== '') wanted.add(input);
  }
  kept.reverse();
  const made = new Set(kept.flatMap((n) => n.output));
  for (const name of made) wanted.delete(name);
  return { kept, reads: wanted };
}

/**
 * One graph: the nodes `outputs` need; inputs are the values they read among `inputNames` (in that order),
 * constants are the block's initializers they read. An output that no node makes (an input passed through, or
 * a value output twice) goes through an Identity.
 */
function graph(block: Block, name: string, nodes: readonly GraphNode[], inputNames: readonly string[], outputs: readonly string[]): Graph {
  const { kept, reads } = needed(nodes, outputs);
  const initializers = block.initializers.filter((t) => reads.has(t.name));
  for (const t of initializers) reads.delete(t.name);
  const inputs = inputNames.filter((n) => reads.has(n));
  const missing = [...reads].filter((n) => !inputs.includes(n));
  if (missing.length > 0) throw new Error(`compiled ${name}: values ${missing.slice(0, 3).join(', ')} are read but never made`);
  const made = new Set(kept.flatMap((n) => n.output));
  const outputNames = outputs.map((o, i) => {
    if (made.has(o) && outputs.indexOf(o) === i) return o;
    const copy = `${name}_output_${i}`;
    kept.push({ opType: 'Identity', input: [o], output: [copy], domain: '' });
    if (!made.has(o) && !inputs.includes(o)) inputs.push(o); // an input passed through
    return copy;
  });
  const type = (value: string): ElemType => block.trace.types.get(value) ?? 'float32';
  const bytes = modelBytes(
    name,
    kept,
    inputs.map((n) => [n, type(n)] as const),
    outputNames.map((n, i) => [n, type(outputs[i])] as const),
    initializers,
  );
  return { bytes, inputs };
}

/** Ops that only rearrange or pick elements: made again, they cost a pass over memory and save a copy out. */
const VIEWS = new Set(['Reshape', 'Squeeze', 'Unsqueeze', 'Flatten', 'Identity', 'Expand']);
/** Elementwise ops, cheap to run again next to the bytes their output would take to save. */
const ELEMENTWISE = new Set(['Add', 'Sub', 'Mul', 'Div', 'Neg', 'Sigmoid', 'Tanh', 'Cast', 'Where', 'Sqrt', 'Reciprocal']);

const BYTES: Record<ElemType, number> = { float32: 4, float64: 8, int32: 4, int64: 8, uint8: 1, int8: 1 };

/**
 * What the backward reads of the forward, made smaller: a saved value whose node is a view or elementwise is
 * made again in the backward from what it reads, if that takes no more bytes (fewer, for elementwise) than the
 * value itself. What it reads inside an inlined kernel (a value with no shape in the trace) is made again too,
 * when cheap. Returns the saved values and the forward nodes to run again, in order.
 */
function smallerSaved(block: Block, forwardNodes: readonly GraphNode[], reads: Iterable<string>, free: ReadonlySet<string>): { saved: string[]; again: GraphNode[] } {
  const producer = new Map(forwardNodes.flatMap((n) => n.output.map((o) => [o, n] as const)));
  const { shapes, types } = block.trace;
  const bytes = (value: string) => shapes.get(value)!.reduce((a, b) => a * b, 1) * BYTES[types.get(value)!];
  const cheap = (node: GraphNode | undefined): node is GraphNode => node !== undefined && node.output.length === 1 && (VIEWS.has(node.opType) || ELEMENTWISE.has(node.opType));
  const saved = new Set(reads);
  /** The nodes that make `value` again and the traced values they read beyond the free and saved; null: not cheap. */
  type Remade = { nodes: Set<GraphNode>; reads: Set<string> } | null;
  const remake = (value: string, memo: Map<string, Remade>): Remade => {
    if (memo.has(value)) return memo.get(value)!;
    const node = producer.get(value);
    let result: Remade = cheap(node) ? { nodes: new Set([node]), reads: new Set() } : null;
    for (const input of node?.input ?? []) {
      if (result === null) break;
      if (input === '' || free.has(input) || saved.has(input)) continue;
      const inner = remake(input, memo);
      const worthIt = inner !== null && (!shapes.has(input) || [...inner.reads].reduce((t, r) => t + bytes(r), 0) <= bytes(input));
      if (worthIt) {
        for (const n of inner.nodes) result.nodes.add(n);
        for (const r of inner.reads) result.reads.add(r);
      } else if (shapes.has(input)) result.reads.add(input);
      else result = null;
    }
    memo.set(value, result);
    return result;
  };
  const again = new Set<GraphNode>();
  let changed = true;
  while (changed) {
    changed = false;
    for (const value of saved) {
      const plan = remake(value, new Map());
      if (plan === null || !shapes.has(value)) continue;
      const added = [...plan.reads].reduce((total, r) => total + bytes(r), 0);
      if (added > bytes(value) || (added === bytes(value) && !VIEWS.has(producer.get(value)!.opType))) continue;
      saved.delete(value);
      for (const r of plan.reads) saved.add(r);
      for (const n of plan.nodes) again.add(n);
      changed = true;
    }
  }
  return { saved: [...saved], again: forwardNodes.filter((n) => again.has(n)) };
}

/** Cut `trace` into its graphs: `y` the block's output, `gradients` the values of the gradients asked for (null: none). */
export function planOf(trace: Trace, y: string, gradients: Array<string | null>): Plan {
  const merged = mergeRepeats(trace.graph.nodes, trace.graph.initializers, trace.backwardFrom ?? trace.graph.nodes.length, (v) => trace.shapes.has(v));
  const block: Block = { nodes: merged.nodes, initializers: merged.initializers, trace };
  const [output, wanted] = [merged.rename(y), gradients.filter((g): g is string => g !== null).map(merged.rename)];
  const [forwardNodes, backwardNodes] = [merged.nodes.slice(0, merged.split), merged.nodes.slice(merged.split)];
  const sources = [...trace.sources.keys(), ...trace.randomSources.map((r) => r.name)];
  const forwardOnly = graph(block, 'forward_only', forwardNodes, sources, [output]);
  if (trace.backwardFrom === null || wanted.length === 0) return { forward: forwardOnly, forwardOnly, backward: null, recompute: null, saved: [], gradients };
  const madeForward = new Set(forwardNodes.flatMap((n) => n.output));
  const reads = [...needed(backwardNodes, wanted).reads].filter((v) => madeForward.has(v));
  const free = new Set([...sources, ...block.initializers.map((t) => t.name)]);
  const { saved, again } = smallerSaved(block, forwardNodes, reads, free);
  const forward = graph(block, 'forward', forwardNodes, sources, [output, ...saved]);
  const backward = graph(block, 'backward', [...again, ...backwardNodes], ['dy', ...saved, ...sources], wanted);
  const recompute = graph(block, 'recompute', merged.nodes, ['dy', ...sources], wanted);
  return { forward, forwardOnly, backward, recompute, saved, gradients: gradients.map((g) => (g === null ? null : merged.rename(g))) };
}
