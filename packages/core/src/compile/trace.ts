/**
 * Tracing: while a Trace is active, every op that runs also writes what it
 * computed into one ONNX graph, so a block of ops run once eagerly can run
 * again as a single onnxruntime session (compile/compiled-call.ts).
 *
 *   native ops: the kernel's own graph is inlined (NativeKernel.run calls traceKernel)
 *   JavaScript ops: the op writes the nodes that compute what its loop did (traceOp)
 *
 * A tensor an op is given must be one the trace knows: a source (the block's
 * inputs and its module's parameters, named when the trace starts), the output
 * of a traced op, or a constant made while tracing (Tensor.full, scalar,
 * fromArray). Anything else, a tensor computed outside the traced ops, ends the
 * trace with a reason, and the block keeps running eagerly. Decisions an op
 * takes on the values of a source (the mask is causal) are guards, checked
 * again before each compiled run; random tensors (dropout masks) are sources
 * drawn again, in the same order, before each compiled run.
 */
import { GraphBuilder, decodeGraph, type ElemType, type GraphConstant } from '../native/graph.ts';
import type { Tensor } from '../tensor.ts';
import type { Generator } from '../random.ts';
import { formatShape } from '../shape.ts';

/** Graph writing for an op's nodes: GraphBuilder's node, int64Constant and scalar (float32). */
export type NodeWriter = Pick<GraphBuilder, 'node' | 'nodeWithOutputs' | 'int64Constant' | 'scalar'>;

export interface Guard {
  sources: readonly string[];
  /** Whether the decision taken while tracing still holds for these tensors. */
  holds: (tensors: readonly Tensor[]) => boolean;
}

export interface RandomSource {
  name: string;
  draw: () => Tensor;
  /** Where draw takes its numbers from, to draw the same tensor again (a recomputed forward). */
  generator: Generator;
}

export class Trace {
  readonly graph = new GraphBuilder('compiled', 'float32');
  /** The graph value of every tensor the trace knows. */
  readonly #values = new Map<Tensor, string>();
  readonly types = new Map<string, ElemType>();
  readonly shapes = new Map<string, readonly number[]>();
  readonly guards: Guard[] = [];
  readonly randomSources: RandomSource[] = [];
  /** Index of the first node written by the backward, once it started. */
  backwardFrom: number | null = null;
  failure: string | null = null;
  #kernels = 0;

  /**
   * `sources`: the tensors from outside, by the input name each gets. `anySize`: the graph will run at other
   * sizes than the traced ones (a whole graph to ship), so an op must not choose its nodes by its input's size.
   */
  constructor(readonly sources: ReadonlyMap<string, Tensor>, readonly anySize = false) {
    for (const [name, tensor] of sources) this.define(tensor, name);
  }

  define(tensor: Tensor, name: string): void {
    this.#values.set(tensor, name);
    this.types.set(name, tensor.dtype);
    this.shapes.set(name, tensor.shape);
  }

  /** The graph value standing for `tensor`, which `op` was given; null (and the trace failed) if there is none. */
  valueOf(tensor: Tensor, op: string): string | null {
    const known = this.#values.get(tensor);
    if (known !== undefined) return known;
    if (constants.has(tensor)) return this.#bake(tensor);
    this.fail(`${op} was given a ${formatShape(tensor.shape)} ${tensor.dtype} tensor computed outside the traced ops`);
    return null;
  }

  /** `to` holds `from`'s values (a detached view): the same graph value, when the trace knows `from`. */
  alias(from: Tensor, to: Tensor): void {
    const name = this.#values.get(from);
    if (name !== undefined) this.#values.set(to, name);
  }

  sourceName(tensor: Tensor): string | null {
    const name = this.#values.get(tensor);
    return name !== undefined && this.sources.has(name) ? name : null;
  }

  fail(reason: string): void {
    this.failure ??= reason;
  }

  /** A prefix for the values of one inlined kernel. */
  kernelPrefix(): string {
    return `k${this.#kernels++}/`;
  }

  #bake(tensor: Tensor): string {
    const name = this.graph.freshName('baked_');
    const data = tensor.data;
    const proto: GraphConstant = { name, dims: [...tensor.shape], dataType: ONNX_TYPES[tensor.dtype] };
    if (tensor.dtype === 'int64') proto.int64Data = Array.from(data as BigInt64Array, Number);
    else if (tensor.dtype === 'float32') proto.floatData = Array.from(data as Float32Array);
    else if (tensor.dtype === 'int32') proto.int32Data = Array.from(data as Int32Array);
    else {
      this.fail(`a ${tensor.dtype} constant`);
      return name;
    }
    this.graph.addInitializer(proto);
    this.define(tensor, name);
    return name;
  }
}

const ONNX_TYPES: Record<Tensor['dtype'], number> = { float32: 1, uint8: 2, int8: 3, int32: 6, int64: 7, float64: 11 };

let active: Trace | null = null;
const constants = new WeakSet<Tensor>();

export function activeTrace(): Trace | null {
  return active;
}

/** Run `fn` with `trace` recording (null: none). */
export function withTrace<T>(trace: Trace | null, fn: () => T): T {
  const outer = active;
  active = trace;
  try {
    return fn();
  } finally {
    active = outer;
  }
}

/** `output` holds `input`'s values (Tensor.detach): a trace that knows `input` knows `output` as the same value. */
export function traceAlias(input: Tensor, output: Tensor): void {
  active?.alias(input, output);
}

/**
 * Whether an op may choose its nodes by its input's size (a kernel variant for many rows): not while tracing a
 * graph that will run at any size.
 */
export function choosesBySize(): boolean {
  return !(active?.anySize ?? false);
}

/** Run `fn` with no trace recording (work beside the traced block, a cache filled for later calls). */
export function untraced<T>(fn: () => T): T {
  return withTrace(null, fn);
}

/** Mark a tensor whose values are fixed at creation (Tensor.full, fromArray): a trace may bake it into the graph. */
export function constant<T extends Tensor>(tensor: T): T {
  if (active !== null) constants.add(tensor);
  return tensor;
}

/** A JavaScript op's outputs, written as the nodes `emit` adds on the graph values of its inputs. */
export function traceOp(op: string, inputs: readonly Tensor[], outputs: readonly Tensor[], emit: (g: NodeWriter, inputs: string[]) => string[]): void {
  const trace = active;
  if (trace === null || trace.failure !== null) return;
  const names = inputs.map((t) => trace.valueOf(t, op));
  if (names.some((n) => n === null)) return;
  const written = emit(trace.graph, names as string[]);
  outputs.forEach((t, i) => trace.define(t, written[i]));
}

/** An op that has no graph form: a trace that reaches it fails with this reason. */
export function untraceable(reason: string): void {
  active?.fail(reason);
}

/** A decision taken on the values of `tensors` (sources of the block), checked again before each compiled run. */
export function traceGuard(op: string, tensors: readonly Tensor[], holds: (tensors: readonly Tensor[]) => boolean): void {
  const trace = active;
  if (trace === null || trace.failure !== null) return;
  const sources = tensors.map((t) => trace.sourceName(t));
  if (sources.some((s) => s === null)) return trace.fail(`${op} decides on the values of a tensor computed inside the block`);
  trace.guards.push({ sources: sources as string[], holds });
}

/** A random tensor (a dropout mask): a source of the compiled block, drawn by `draw` from `generator` again before each run. */
export function traceRandom(tensor: Tensor, generator: Generator, draw: () => Tensor): void {
  const trace = active;
  if (trace === null || trace.failure !== null) return;
  const name = `random_${trace.randomSources.length}`;
  trace.randomSources.push({ name, draw, generator });
  trace.define(tensor, name);
}

const decoded = new WeakMap<Uint8Array, ReturnType<typeof decodeGraph>>();

/** A native kernel's run, its graph inlined: every value renamed under a fresh prefix, its inputs bound to `inputs`. */
export function traceKernel(key: string, bytes: Uint8Array, inputs: readonly Tensor[], outputs: readonly Tensor[]): void {
  const trace = active;
  if (trace === null || trace.failure !== null) return;
  const op = key.split(':')[0];
  const bound = inputs.map((t) => trace.valueOf(t, op));
  if (bound.some((n) => n === null)) return;
  let graph = decoded.get(bytes);
  if (graph === undefined) decoded.set(bytes, (graph = decodeGraph(bytes)));
  const prefix = trace.kernelPrefix();
  const renamed = new Map<string, string>(graph.inputs.map((name, i) => [name, bound[i]!]));
  const rename = (name: string) => (name === '' ? '' : (renamed.get(name) ?? `${prefix}${name}`));
  for (const init of graph.initializers) trace.graph.addInitializer({ ...init, name: rename(init.name) });
  for (const node of graph.nodes) trace.graph.addNode({ ...node, input: node.input.map(rename), output: node.output.map(rename) });
  graph.outputs.forEach((name, i) => trace.define(outputs[i], rename(name)));
}
