/**
 * Compiled blocks: a module's forward and backward traced once, on a real
 * step run eagerly, and run after that as whole onnxruntime sessions (one
 * forward, one backward), so activations stay in native memory between the
 * ops of a block and onnxruntime fuses across them.
 *
 *   h = compiledCall(layer, h, [cos, sin, bias], (x) => layer.call(x, context, null));
 *
 * `inputs` are the tensors from outside the module that `fn` uses besides x
 * (the same ones, by identity, that it will read); the module's parameters and
 * buffers are the other sources, fed on every run (so an optimizer's updates
 * are seen, and blocks of the same structure share one session). To autograd a
 * compiled block is one op, from x and the trainable parameters to y.
 *
 * A block is traced again when its signature changes: the shapes, whether
 * gradients are on, which parameters train, training flags, any module's compileKey (merge, unmerge, a
 * new adapter), or a guard fails. It runs eagerly, said once on stderr with the
 * reason, when the trace cannot capture it: a forward hook, float64, or an op
 * with no graph form (compile/trace.ts).
 */
import { createHash } from 'node:crypto';
import { attach, isGradEnabled, noteInputs, record } from '../autograd.ts';
import type { Module } from '../module.ts';
import { checkpoint } from '../checkpoint.ts';
import { Tensor } from '../tensor.ts';
import type { Generator } from '../random.ts';
import { disposeKernels, nativeKernel } from '../native/session.ts';
import { Trace, withTrace } from './trace.ts';
import { planOf, type Graph, type Plan } from './plan.ts';

interface Compiled {
  plan: Plan;
  guards: Trace['guards'];
  random: Trace['randomSources'];
  /** The trainable parameters, by path, in the order of the plan's gradients after x's. */
  trainable: string[];
}

type Entry = Compiled | { eager: string };

const KEY_PREFIX = 'compiled:';
let generation = 0;
/** What a module keeps: its entries by signature, and what its forwards saved that the next may write into. */
interface Own {
  generation: number;
  bySignature: Map<string, Entry>;
  spare: Spare;
}
const entries = new WeakMap<Module, Own>();
const said = new Set<string>();

/** Where the one line about a block that runs eagerly goes (stderr by default). */
let report = (line: string) => console.error(line);
export function setCompileReporter(reporter: (line: string) => void): void {
  report = reporter;
}

/** Forget every compiled block and dispose its sessions (the model changed, or training is over). */
export function disposeCompiled(): void {
  generation++;
  recent.clear();
  disposeKernels((key) => key.startsWith(KEY_PREFIX));
}

function ownOf(module: Module): Own {
  let own = entries.get(module);
  if (own === undefined || own.generation !== generation) entries.set(module, (own = { generation, bySignature: new Map(), spare: { graph: null, sets: [] } }));
  return own;
}

function entriesOf(module: Module): Map<string, Entry> {
  return ownOf(module).bySignature;
}

/** Why `module` cannot be traced at all, or null. */
function untraceableBecause(module: Module, x: Tensor): string | null {
  if (x.dtype !== 'float32') return `its input is ${x.dtype} (compiled blocks are float32)`;
  const hooked = module.namedModules().find(([, m]) => m.hasForwardHooks());
  if (hooked !== undefined) return `a forward hook on ${hooked[0] || 'the block'}`;
  return null;
}

function signatureOf(module: Module, x: Tensor, inputs: readonly Tensor[]): string {
  const tensors = [x, ...inputs].map((t) => `${t.dtype}[${t.shape}]`).join();
  const parameters = module.namedParameters().map(([path, p]) => `${path}[${p.shape}]${p.requiresGrad ? '+' : ''}`).join();
  const modules = module.namedModules().map(([, m]) => `${m.training ? 1 : 0}${m.compileKey()}`).join();
  return `${tensors}|${isGradEnabled()}|${parameters}|${modules}`;
}

export interface CompiledCallOptions {
  /**
   * Keep no activations: the forward runs alone, and the backward graph runs it again inside (activation
   * checkpointing). Until the block is traced, it is traced inside core's checkpoint().
   */
  checkpointed?: boolean;
}

/** Run `fn(x)`: compiled when `module` has been traced at this signature, traced on this call when not, else eagerly. */
export function compiledCall(module: Module, x: Tensor, inputs: readonly Tensor[], fn: (x: Tensor) => Tensor, { checkpointed = false }: CompiledCallOptions = {}): Tensor {
  const own = entriesOf(module);
  const signature = signatureOf(module, x, inputs);
  const entry = own.get(signature);
  if (checkpointed && isGradEnabled()) {
    const recomputed = entry !== undefined && !('eager' in entry) ? replay(entry, module, x, inputs, true) : null;
    return recomputed ?? checkpoint((h) => compiledCall(module, h, inputs, fn), x);
  }
  if (entry !== undefined && 'eager' in entry) return fn(x);
  if (entry !== undefined) {
    const y = replay(entry, module, x, inputs, false);
    if (y !== null) return y;
  }
  const reason = untraceableBecause(module, x);
  if (reason !== null) {
    runsEagerly(own, signature, module, reason);
    return fn(x);
  }
  if (own.size >= MAX_SIGNATURES) {
    runsEagerly(own, signature, module, `more than ${MAX_SIGNATURES} input shapes or settings; batches padded to a few lengths (packing) compile`);
    return fn(x);
  }
  return traced(own, signature, module, x, inputs, fn);
}

/** Signatures traced per module; each new one costs an eager step and a session. */
const MAX_SIGNATURES = 8;

/** Whether any of `targets` is on the tape behind `y`. */
function reachesAny(y: Tensor, targets: ReadonlySet<Tensor>): boolean {
  const seen = new Set<Tensor>();
  const stack = [y];
  while (stack.length > 0) {
    const t = stack.pop()!;
    if (targets.has(t)) return true;
    for (const input of t.gradFn?.inputs ?? []) {
      if (!input.requiresGrad || seen.has(input)) continue;
      seen.add(input);
      stack.push(input);
    }
  }
  return false;
}

function runsEagerly(own: Map<string, Entry>, signature: string, module: Module, reason: string): void {
  own.set(signature, { eager: reason });
  const line = `lorakit: ${module.constructor.name} runs eagerly, not compiled: ${reason}`;
  if (!said.has(line)) report(line);
  said.add(line);
}

/** Sources by name: x, the inputs, the module's parameters, buffers and derived tensors. */
function sourcesOf(module: Module, x: Tensor, inputs: readonly Tensor[]): Map<string, Tensor> {
  const sources = new Map<string, Tensor>([['x', x]]);
  inputs.forEach((t, i) => sources.set(`input_${i}`, t));
  for (const [path, t] of [...module.namedParameters(), ...module.namedBuffers()]) sources.set(`param:${path}`, t);
  for (const [path, m] of module.namedModules()) for (const [name, t] of m.derivedTensors()) sources.set(`derived:${path}.${name}`, t);
  return sources;
}

/**
 * The eager run that is traced: fn on a leaf standing for x, its own tape joined to the caller's by one node.
 * The trace's backward half is written when that node's backward runs; then the block is compiled.
 */
function traced(own: Map<string, Entry>, signature: string, module: Module, x: Tensor, inputs: readonly Tensor[], fn: (x: Tensor) => Tensor): Tensor {
  // NOTE: x's gradient is traced even when x needs none (the first layer, after a frozen embedding), so every layer
  // has the same graphs and shares their sessions: measured at tiny-code-llama's shapes, 150 MiB less peak RSS
  // (two arenas fewer) for no slower a step.
  const leaf = x.detach().requiresGrad_(isGradEnabled());
  const trace = new Trace(sourcesOf(module, leaf, inputs));
  const y = withTrace(trace, () => fn(leaf));
  const trainable = module.namedParameters().filter(([, p]) => p.requiresGrad);
  const compile = (gradients: Array<Tensor | null>) => {
    const [yName, ...gradientNames] = [y, ...gradients].map((t) => (t === null ? null : trace.valueOf(t, 'the block\'s output')));
    try {
      if (trace.failure !== null) throw new Error(trace.failure);
      const plan = planOf(trace, yName!, gradientNames);
      own.set(signature, { plan, guards: trace.guards, random: trace.randomSources, trainable: trainable.map(([path]) => path) });
    } catch (error) {
      runsEagerly(own, signature, module, (error as Error).message);
    }
  };
  if (!x.requiresGrad && !reachesAny(y, new Set(trainable.map(([, p]) => p)))) {
    compile([]); // nothing to train reaches y (a merged layer): the forward alone
    return new Tensor(y.data, y.shape);
  }
  const out = new Tensor(y.data, y.shape);
  return attach('compiled block (tracing)', out, [x, ...trainable.map(([, p]) => p)], (dy) => {
    const kept = trainable.map(([, p]) => p.grad);
    for (const [, p] of trainable) p.grad = null;
    try {
      trace.backwardFrom = trace.graph.nodes.length;
      trace.define(dy, 'dy');
      withTrace(trace, () => y.backward(dy));
      const gradients = [leaf.grad, ...trainable.map(([, p]) => p.grad)];
      compile(gradients);
      return gradients.map((g) => (g === null ? null : () => g));
    } finally {
      trainable.forEach(([, p], i) => (p.grad = kept[i]));
    }
  });
}

/** Run `draw` with each generator back at the state it had, then put each where it is now (checkpoint.ts's rule). */
function redrawnAt<T>(states: ReadonlyMap<Generator, readonly number[]>, draw: () => T): T {
  const now = [...states.keys()].map((g) => [g, g.getState()] as const);
  for (const [g, state] of states) g.setState(state);
  try {
    return draw();
  } finally {
    for (const [g, state] of now) g.setState(state);
  }
}

/** Sessions kept, the most recently used; an older one is disposed, and made again if its graph runs again. */
const MAX_SESSIONS = 16;
const recent = new Set<string>(); // session keys in order of last use
const keys = new WeakMap<Graph, string>();

/** The session of `graph`, shared by every block whose graph has the same bytes. */
function session(graph: Graph) {
  let key = keys.get(graph);
  if (key === undefined) keys.set(graph, (key = `${KEY_PREFIX}${createHash('sha256').update(graph.bytes).digest('hex').slice(0, 24)}`));
  recent.delete(key);
  recent.add(key);
  if (recent.size > MAX_SESSIONS) {
    const oldest = recent.values().next().value!;
    recent.delete(oldest);
    disposeKernels((k) => k === oldest);
  }
  return nativeKernel(key, 'float32', () => graph.bytes, { arena: true });
}

/**
 * The compiled block run on these tensors, or null when a guard no longer holds (the caller traces again).
 * `recompute`: keep nothing from the forward (dropout masks drawn again), run the recompute graph in the backward.
 */
function replay(compiled: Compiled, module: Module, x: Tensor, inputs: readonly Tensor[], recompute: boolean): Tensor | null {
  const sources = sourcesOf(module, x, inputs);
  for (const guard of compiled.guards) if (!guard.holds(guard.sources.map((s) => sources.get(s)!))) return null;
  const { plan, random } = compiled;
  const states = new Map(random.map(({ generator }) => [generator, generator.getState()]));
  const drawn = new Map(random.map((r) => [r.name, r.draw()]));
  const trainable = compiled.trainable.map((path) => sources.get(`param:${path}`)!);
  const wantsGradients = isGradEnabled() && plan.backward !== null && (x.requiresGrad || trainable.length > 0);
  if (!wantsGradients || recompute) {
    noteInputs([x, ...trainable]); // a checkpoint's first pass must still see what trains inside
    const [y] = run(plan.forwardOnly, sources, drawn);
    if (!wantsGradients) return y;
    return record('compiled block (recomputed)', y, [x, ...trainable], gradientThunks(plan, (dy) => {
      const again = redrawnAt(states, () => new Map(random.map((r) => [r.name, r.draw()])));
      return run(plan.recompute!, sources, again, new Map([['dy', dy]]));
    }));
  }
  const free = spareOf(module, plan.forward);
  const reuse = free.sets.pop();
  const [y, ...saved] = runInto(plan.forward, reuse === undefined ? undefined : [null, ...reuse], sources, drawn);
  const kept = new Map(plan.saved.map((name, i) => [name, saved[i]]));
  return record('compiled block', y, [x, ...trainable], gradientThunks(plan, (dy) => {
    const gradients = run(plan.backward!, sources, drawn, kept, new Map([['dy', dy]]));
    // The tape runs a node's backward once (a second backward() is refused), so the saved values are free now.
    if (ownOf(module).spare === free) free.sets.push(saved);
    return gradients;
  }));
}

/**
 * What a module's forwards saved, once their backward ran: the next forward of the same graph writes into them,
 * so a step's saved values are the same memory every step, not fresh pages to copy into and fault in (measured at
 * tiny-code-llama's shapes: a layer's forward 62 -> 48 ms). Only the graph a module ran last keeps its sets: a
 * new shape lets the old ones go, so this holds no more than one step's saved values.
 */
interface Spare {
  graph: Graph | null;
  sets: Tensor[][];
}

function spareOf(module: Module, graph: Graph): Spare {
  const own = ownOf(module);
  if (own.spare.graph !== graph) own.spare = { graph, sets: [] };
  return own.spare;
}

/** Run `graph` on its inputs, looked up by name in `values`. */
function run(graph: Graph, ...values: ReadonlyArray<ReadonlyMap<string, Tensor>>): Tensor[] {
  return runInto(graph, undefined, ...values);
}

/** run, the outputs written into `into` where it gives a tensor (NativeKernel.run). */
function runInto(graph: Graph, into: ReadonlyArray<Tensor | null> | undefined, ...values: ReadonlyArray<ReadonlyMap<string, Tensor>>): Tensor[] {
  const lookup = (name: string) => values.find((v) => v.has(name))!.get(name)!;
  return session(graph).run(graph.inputs.map(lookup), into);
}

/** One thunk per gradient the plan asks for (null where none reaches), all from one run of `backward`. */
function gradientThunks(plan: Plan, backward: (dy: Tensor) => Tensor[]): (dy: Tensor) => Array<(() => Tensor) | null> {
  return (dy) => {
    let gradients: Tensor[] | null = null;
    let next = 0;
    return plan.gradients.map((g) => {
      if (g === null) return null;
      const k = next++;
      return () => (gradients ??= backward(dy))[k];
    });
  };
}
