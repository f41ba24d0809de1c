/**
 * Common values merged: a traced block often computes one thing several times (the three q/k/v LoRA kernels each
 * flatten the same normed input; inlined kernels each bake the same shape constant). A node that computes what an
 * earlier node computed (same op, attributes and inputs) is dropped and its outputs read the earlier node's;
 * equal constants become one. Fewer nodes run, and what the backward reads is saved once.
 */
import { constantKey, nodeKey, type GraphConstant, type GraphNode } from '../native/graph.ts';

export interface Merged {
  nodes: GraphNode[];
  initializers: GraphConstant[];
  /** How many of the kept nodes came from before the original `split`. */
  split: number;
  /** The name a value of the original graph has now (itself unless it was a repeat). */
  rename: (value: string) => string;
}

/**
 * `split`: an index into `nodes` (where the backward starts), told back as an index into the nodes kept. A node
 * after the split merges with one before it only if `known` knows each output (the backward would read it from
 * the forward: it must be a value with a type and a shape, which an inlined kernel's inner values have not).
 */
export function mergeRepeats(nodes: readonly GraphNode[], initializers: readonly GraphConstant[], split: number, known: (value: string) => boolean): Merged {
  const renamed = new Map<string, string>();
  const rename = (value: string) => renamed.get(value) ?? value;

  const firstConstant = new Map<string, string>();
  const keptInitializers: GraphConstant[] = [];
  for (const constant of initializers) {
    const key = constantKey(constant);
    const first = firstConstant.get(key);
    if (first === undefined) {
      firstConstant.set(key, constant.name);
      keptInitializers.push(constant);
    } else renamed.set(constant.name, first);
  }

  const [inForward, inBackward] = [new Map<string, GraphNode>(), new Map<string, GraphNode>()];
  const keptNodes: GraphNode[] = [];
  let keptBeforeSplit = 0;
  for (const [index, original] of nodes.entries()) {
    const node = { ...original, input: original.input.map(rename) };
    const key = nodeKey(node);
    const forwardTwin = inForward.get(key);
    const first = index < split ? forwardTwin : (inBackward.get(key) ?? (forwardTwin?.output.every(known) ? forwardTwin : undefined));
    if (first !== undefined) {
      node.output.forEach((output, i) => output !== '' && renamed.set(output, first.output[i]));
      continue;
    }
    (index < split ? inForward : inBackward).set(key, node);
    keptNodes.push(node);
    if (index < split) keptBeforeSplit++;
  }
  return { nodes: keptNodes, initializers: keptInitializers, split: keptBeforeSplit, rename };
}
