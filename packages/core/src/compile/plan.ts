/**
 * A finished trace cut into the graphs a compiled block runs:
 *
 *   forward       sources -> y, saved      (saved: the forward values the backward reads)
 *   forwardOnly   sources -> y             (no gradient wanted: inference, a checkpoint's first pass)
 *   backward      dy, saved, sources -> the gradients asked for
 *   recompute     dy, sources -> the gradients asked for (the forward run again inside: checkpointing)
 *
 * Each graph keeps only the nodes its outputs need, and the sources and
 * constants those nodes read.
 */
import { modelBytes, type ElemType, type GraphNode } from '../native/graph.ts';
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
 * constants are the trace's initializers they read. An output that no node makes (an input passed through, or
 * a value output twice) goes through an Identity.
 */
function graph(trace: Trace, name: string, nodes: readonly GraphNode[], inputNames: readonly string[], outputs: readonly string[]): Graph {
  const { kept, reads } = needed(nodes, outputs);
  const initializers = trace.graph.initializers.filter((t) => reads.has(t.name));
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
  const type = (value: string): ElemType => trace.types.get(value) ?? 'float32';
  const bytes = modelBytes(
    name,
    kept,
    inputs.map((n) => [n, type(n)] as const),
    outputNames.map((n, i) => [n, type(outputs[i])] as const),
    initializers,
  );
  return { bytes, inputs };
}

/** Cut `trace` into its graphs: `y` the block's output, `gradients` the values of the gradients asked for (null: none). */
export function planOf(trace: Trace, y: string, gradients: Array<string | null>): Plan {
  const nodes = trace.graph.nodes;
  const split = trace.backwardFrom ?? nodes.length;
  const [forwardNodes, backwardNodes] = [nodes.slice(0, split), nodes.slice(split)];
  const sources = [...trace.sources.keys(), ...trace.randomSources.map((r) => r.name)];
  const forwardOnly = graph(trace, 'forward_only', forwardNodes, sources, [y]);
  const wanted = gradients.filter((g): g is string => g !== null);
  if (trace.backwardFrom === null || wanted.length === 0) return { forward: forwardOnly, forwardOnly, backward: null, recompute: null, saved: [], gradients };
  const madeForward = new Set(forwardNodes.flatMap((n) => n.output));
  const saved = [...needed(backwardNodes, wanted).reads].filter((v) => madeForward.has(v));
  const forward = graph(trace, 'forward', forwardNodes, sources, [y, ...saved]);
  const backward = graph(trace, 'backward', backwardNodes, ['dy', ...saved, ...sources], wanted);
  const recompute = graph(trace, 'recompute', nodes, ['dy', ...sources], wanted);
  return { forward, forwardOnly, backward, recompute, saved, gradients };
}
