/**
 * Whole graphs to ship: a function of some tensors, traced (compile/trace.ts) into one standalone ONNX graph
 * whose weights are initializers and which serves every batch size and sequence length.
 *
 *   const graph = wholeGraph(sizesList, (sizes) => ({ inputs, weights, run }), symbols, g)
 *
 * A trace records what one run computed, shapes included: a Reshape to [B·T, C] bakes B·T. So the function
 * is traced at several sizes (each a set of named dims, say batch 2, 3, 5 and length 3, 5, 2), and the traces
 * must agree node for node; an int64 constant that differs between them is a size, and is solved as c·Πdims
 * over the named dims (B·T, G·T, P + T named S, ...) and computed in the graph from the run's own dims. Any
 * other difference (a float constant shaped by the length, a node that only one size takes) is refused with
 * the op that made it.
 */
import { noGrad } from '../autograd.ts';
import type { Tensor } from '../tensor.ts';
import { elemTypeNumber, nodeKey, type GraphBuilder, type GraphConstant, type GraphNode } from '../native/graph.ts';
import { Trace, withTrace } from './trace.ts';

/** One traced run: the sources by graph name, what it computed, and its outputs' values. */
export interface TracedRun {
  /** The names of the inputs and weights, which the nodes read as they are. */
  sources: ReadonlySet<string>;
  nodes: readonly GraphNode[];
  initializers: readonly GraphConstant[];
  outputs: string[];
}

export interface WholeGraphRun {
  /** Tensors that become graph inputs, by name. */
  inputs: ReadonlyMap<string, Tensor>;
  /** Tensors that become initializers (weights), by name. */
  weights: ReadonlyMap<string, Tensor>;
  /** The computation; its results become the outputs, in order. */
  run: () => Tensor[];
}

/** Trace `run` once, with no tape: the nodes it wrote and its outputs' values (inputs and weights by their names). */
export function traceRun({ inputs, weights, run }: WholeGraphRun): TracedRun {
  const trace = new Trace(new Map([...inputs, ...weights]), true);
  const results = noGrad(() => withTrace(trace, run));
  const outputs = results.map((t) => trace.valueOf(t, 'the output'));
  if (trace.failure !== null) throw new Error(`the model cannot be written as one graph: ${trace.failure}`);
  if (trace.guards.length > 0) throw new Error('the model cannot be written as one graph: an op decides on the values of its inputs');
  if (trace.randomSources.length > 0) throw new Error('the model cannot be written as one graph: it draws random numbers (dropout in training mode)');
  return { sources: new Set(trace.sources.keys()), nodes: trace.graph.nodes, initializers: trace.graph.initializers, outputs: outputs as string[] };
}

export type Sizes = Readonly<Record<string, number>>;

/**
 * Write into `g` the graph the traces at `sizes` agree on, every constant that varies with the sizes
 * computed from `symbols` (size name -> graph value, int64 [1]); the weights are the caller's to add.
 * The trace's own values are renamed under `traced/`, apart from `g`'s; returns the outputs' values.
 */
export function writeGeneralized(g: GraphBuilder, runs: readonly TracedRun[], sizes: readonly Sizes[], symbols: Readonly<Record<string, string>>): string[] {
  const [first, ...others] = runs;
  for (const other of others) sameStructure(first, other);
  const computed = new Map<string, string>(); // a size-dependent constant -> the value computing it
  const sizeValues = new SizeValues(g, sizes, symbols);
  first.initializers.forEach((constant, i) => {
    const versions = runs.map((run) => valuesOf(run.initializers[i]));
    if (versions.every((v) => sameValues(v, versions[0]))) return;
    if (constant.dataType !== elemTypeNumber('int64') || constant.dims.length > 1 || versions.some((v) => v.length !== versions[0].length)) {
      throw new Error(`the model cannot be written as one graph: a constant ${constant.name} of shape [${constant.dims}] depends on the input's size`);
    }
    computed.set(constant.name, sizeValues.of(versions, constant.dims.length === 0, constant.name));
  });
  const rename = (name: string) => computed.get(name) ?? (name === '' || first.sources.has(name) ? name : `traced/${name}`);
  for (const constant of first.initializers) if (!computed.has(constant.name)) g.addInitializer({ ...constant, name: rename(constant.name) });
  for (const node of first.nodes) g.addNode({ ...node, input: node.input.map(rename), output: node.output.map(rename) });
  return first.outputs.map(rename);
}

/** Size-dependent constants as nodes on the symbols, each distinct element and constant written once. */
class SizeValues {
  readonly #written = new Map<string, string>();

  constructor(readonly g: GraphBuilder, readonly sizes: readonly Sizes[], readonly symbols: Readonly<Record<string, string>>) {}

  /** A constant whose values at each set of sizes are `versions`: each element fixed, or c·Π of named sizes. */
  of(versions: readonly number[][], scalar: boolean, what: string): string {
    const elements = versions[0].map((_, k) => this.#element(versions.map((v) => Number(v[k])), what));
    const joined = elements.length === 1 ? elements[0] : this.#once(`concat ${elements}`, () => this.g.node('Concat', elements, { axis: 0 }));
    return scalar ? this.#once(`scalar ${joined}`, () => this.g.node('Squeeze', [joined, this.g.int64Constant([0])])) : joined;
  }

  #element(values: number[], what: string): string {
    if (values.every((v) => v === values[0])) return this.#once(`fixed ${values[0]}`, () => this.g.int64Constant([values[0]]));
    const { factor, dims } = solveMonomial(values, this.sizes, what);
    let product = this.#once(`fixed ${factor}`, () => this.g.int64Constant([factor]));
    dims.forEach((dim, i) => (product = this.#once(`${factor}·${dims.slice(0, i + 1).join('·')}`, () => this.g.node('Mul', [product, this.symbols[dim]]))));
    return product;
  }

  #once(key: string, write: () => string): string {
    let value = this.#written.get(key);
    if (value === undefined) this.#written.set(key, (value = write()));
    return value;
  }
}

function sameStructure(a: TracedRun, b: TracedRun): void {
  const nodeAt = a.nodes.findIndex((node, i) => b.nodes[i] === undefined || nodeKey(node) !== nodeKey(b.nodes[i]) || node.output.join() !== b.nodes[i].output.join());
  if (nodeAt >= 0 || a.nodes.length !== b.nodes.length) {
    const where = nodeAt >= 0 ? `${a.nodes[nodeAt].opType} node ${a.nodes[nodeAt].output[0]}` : 'the number of nodes';
    throw new Error(`the model cannot be written as one graph: its traces at two input sizes differ at ${where}`);
  }
  const constantAt = a.initializers.findIndex((c, i) => b.initializers[i]?.name !== c.name || b.initializers[i].dataType !== c.dataType || b.initializers[i].dims.length !== c.dims.length);
  if (constantAt >= 0 || a.initializers.length !== b.initializers.length || a.outputs.join() !== b.outputs.join()) {
    throw new Error('the model cannot be written as one graph: its traces at two input sizes have different constants');
  }
}

function valuesOf(constant: GraphConstant): number[] {
  return constant.int64Data ?? constant.int32Data ?? constant.floatData ?? constant.doubleData ?? Array.from(constant.rawData ?? []);
}

function sameValues(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

/** The one c·Π(dims) equal to `values` at every set of sizes (fewest dims first); ambiguity or none is an error. */
export function solveMonomial(values: readonly number[], sizes: readonly Sizes[], what: string): { factor: number; dims: string[] } {
  const names = Object.keys(sizes[0]);
  const fits: Array<{ factor: number; dims: string[] }> = [];
  for (let mask = 1; mask < 1 << names.length; mask++) {
    const dims = names.filter((_, i) => mask & (1 << i));
    const products = sizes.map((s) => dims.reduce((p, d) => p * s[d], 1));
    const factor = values[0] / products[0];
    if (Number.isInteger(factor) && factor !== 0 && values.every((v, k) => v === factor * products[k])) fits.push({ factor, dims });
  }
  if (fits.length !== 1) {
    const seen = sizes.map((s, k) => `${values[k]} at ${JSON.stringify(s)}`).join(', ');
    throw new Error(`the model cannot be written as one graph: a size in constant ${what} (${seen}) is ${fits.length === 0 ? 'no' : 'more than one'} product of the input's dims`);
  }
  return fits[0];
}
