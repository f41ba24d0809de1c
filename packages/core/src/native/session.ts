/**
 * Native kernels: ONNX graphs run by onnxruntime-node's synchronous binding,
 * one cached session per kernel key.
 *
 *   const kernel = nativeKernel('matmul:float32', 'float32', () => buildGraph());
 *   const [y] = kernel.run([a, b]);    // blocks until done, like PyTorch
 *
 * NOTE: the public `InferenceSession.run` only wraps this binding's run() in a
 * promise; calling the binding directly keeps forward() synchronous.
 * Sessions do not spin their threads (docs/engine.md section 4: spinning collapses
 * throughput when several sessions alternate). Inputs are passed zero-copy.
 *
 * Sessions run on the execution providers `setExecutionProviders` names (or
 * LORAKIT_EXECUTION_PROVIDERS, comma-separated), the CPU by default. A provider
 * that cannot start (no GPU adapter for WebGPU) is said once and left out.
 */
import { availableParallelism } from 'node:os';
import { Tensor as OrtTensor } from 'onnxruntime-node';
import { binding, initOrt } from 'onnxruntime-node/dist/binding.js';
import { Tensor, type Storage } from '../tensor.ts';
import type { ElemType } from './graph.ts';
import { traceKernel, untraceable } from '../compile/trace.ts';

type BindingSession = InstanceType<typeof binding.InferenceSession>;

const ortTypes = { float32: 'float32', float64: 'float64', int32: 'int32', int64: 'int64', uint8: 'uint8', int8: 'int8' } as const;

/** Intra-op threads: LORAKIT_THREADS, else every core. */
export function nativeThreads(): number {
  const fromEnv = Number(process.env.LORAKIT_THREADS);
  return Number.isInteger(fromEnv) && fromEnv > 0 ? fromEnv : availableParallelism();
}

let initialized = false;

function initialize(): void {
  if (initialized) return;
  initOrt();
  initialized = true;
}

/** onnxruntime's names of the providers this build of onnxruntime-node has ('cpu', 'webgpu', ...). */
export function availableExecutionProviders(): string[] {
  initialize();
  return binding.listSupportedBackends().map((b) => b.name);
}

let executionProviders: readonly string[] = (process.env.LORAKIT_EXECUTION_PROVIDERS ?? 'cpu').split(',').map((p) => p.trim()).filter(Boolean);
/** Providers that failed to start a session, left out of every later one. */
const unavailable = new Set<string>();

/**
 * The execution providers sessions ask for, in order of preference; onnxruntime places each node on the first
 * that has a kernel for it, the CPU last. Sessions already made are disposed, so every kernel runs on the new list.
 */
export function setExecutionProviders(names: readonly string[]): void {
  const known = availableExecutionProviders();
  const unknown = names.filter((n) => !known.includes(n));
  if (names.length === 0 || unknown.length > 0) throw new Error(`setExecutionProviders: ${unknown.length ? `${unknown.join(', ')} not in this build of onnxruntime-node` : 'no provider given'}; it has ${known.join(', ')}`);
  executionProviders = [...names];
  unavailable.clear();
  for (const kernel of kernels.values()) kernel.dispose();
  kernels.clear();
}

export function getExecutionProviders(): string[] {
  return executionProviders.filter((p) => !unavailable.has(p));
}

// NOTE: float64 graphs (gradient checks) run with only the basic rewrites:
// onnxruntime's extended fusions (QuickGelu, FusedMatMul) have float32 kernels only.
/** A model to load: its bytes, or an ONNX file (whose external data onnxruntime reads beside it). */
export type ModelSource = Uint8Array | { path: string };

function createSession(source: ModelSource, key: string, dtype: ElemType, options: KernelOptions): BindingSession {
  initialize();
  const providers = getExecutionProviders();
  try {
    return loadSession(source, key, dtype, providers.length > 0 ? providers : ['cpu'], options);
  } catch (error) {
    const accelerators = providers.filter((p) => p !== 'cpu');
    if (accelerators.length === 0) throw error;
    for (const p of accelerators) unavailable.add(p);
    process.emitWarning(`lorakit: the ${accelerators.join(', ')} execution provider could not start (${(error as Error).message.split('\n')[0]}); running on the CPU`);
    return createSession(source, key, dtype, options);
  }
}

export interface KernelOptions {
  /**
   * Keep the session's memory between runs in onnxruntime's arena: for graphs whose intermediates are large
   * (attention's [B, H, T, S] scores, the head's chunk of logits), which would otherwise be mapped fresh from the
   * system, page by page, on every run (measured at SmolLM2 shapes: attention 1.7x faster each way, a training step 15% faster). Other
   * kernels go without: each arena keeps its own peak.
   */
  arena?: boolean;
  /**
   * Let the session's threads spin between its ops instead of sleeping: for a session that runs alone, many times
   * in a row, on thousands of small ops (a decoding loop; measured at SmolLM2 shapes: 24 -> 29.5 tokens/s). Never for
   * the many small kernels of an eager step, which alternate and would spin against each other.
   */
  spinning?: boolean;
  /** Keep the graph's bytes for traces that inline the kernel (default); a large session run on its own lets them go. */
  keepGraph?: boolean;
}

function loadSession(source: ModelSource, key: string, dtype: ElemType, executionProviders: string[], { arena = false, spinning = false }: KernelOptions): BindingSession {
  const session = new binding.InferenceSession();
  const options = {
    executionProviders,
    intraOpNumThreads: nativeThreads(),
    interOpNumThreads: 1,
    graphOptimizationLevel: dtype === 'float64' ? ('basic' as const) : ('all' as const),
    executionMode: 'sequential' as const,
    enableCpuMemArena: arena,
    extra: { session: { intra_op: { allow_spinning: spinning ? '1' : '0' }, inter_op: { allow_spinning: '0' } } },
  };
  try {
    if (source instanceof Uint8Array) session.loadModel(source.buffer as ArrayBuffer, source.byteOffset, source.byteLength, options);
    else session.loadModel(source.path, options);
  } catch (error) {
    throw new Error(`native kernel ${key}: onnxruntime rejected the graph: ${(error as Error).message}`);
  }
  return session;
}

export class NativeKernel {
  readonly #session: BindingSession;
  readonly #inputNames: string[];
  readonly #outputNames: string[];

  /** The ONNX graph, kept for traces that inline it (none for a model loaded from a file). */
  readonly bytes: Uint8Array | null;

  constructor(readonly key: string, dtype: ElemType, source: ModelSource, options: KernelOptions = {}) {
    this.#session = createSession(source, key, dtype, options);
    this.bytes = source instanceof Uint8Array && options.keepGraph !== false ? source : null;
    this.#inputNames = this.#session.inputMetadata.map((m) => m.name);
    this.#outputNames = this.#session.outputMetadata.map((m) => m.name);
  }

  dispose(): void {
    this.#session.dispose();
  }

  /**
   * Run on tensors given in the graph's input order; returns outputs in order. `into`: tensors of the shapes the
   * outputs will have, written in place of new ones (null: a new one), so that memory already touched is reused.
   */
  run(inputs: readonly Tensor[], into?: ReadonlyArray<Tensor | null>): Tensor[] {
    if (inputs.length !== this.#inputNames.length) {
      throw new Error(`native kernel ${this.key}: expected ${this.#inputNames.length} inputs, got ${inputs.length}`);
    }
    const feeds: Record<string, OrtTensor> = {};
    inputs.forEach((t, i) => {
      feeds[this.#inputNames[i]] = new OrtTensor(ortTypes[t.dtype], t.data as never, [...t.shape]);
    });
    const fetches = Object.fromEntries(this.#outputNames.map((n, i) => {
      const t = into?.[i];
      return [n, t == null ? null : new OrtTensor(ortTypes[t.dtype], t.data as never, [...t.shape])];
    }));
    let results;
    try {
      results = this.#session.run(feeds, fetches, {});
    } catch (error) {
      const shapes = inputs.map((t) => `[${t.shape}]`).join(', ');
      throw new Error(`native kernel ${this.key} on ${shapes}: ${(error as Error).message}`);
    }
    const outputs = this.#outputNames.map((n, i) => {
      const given = into?.[i];
      if (given != null) return given;
      const value = results[n] as OrtTensor;
      return new Tensor(value.data as Storage, value.dims);
    });
    if (this.bytes === null) untraceable(`${this.key} keeps no graph to inline`);
    else traceKernel(this.key, this.bytes, inputs, outputs);
    return outputs;
  }
}

const kernels = new Map<string, NativeKernel>();

/** The cached kernel for `key` (which should name the dtype), building its graph on first use. */
export function nativeKernel(key: string, dtype: ElemType, buildGraph: () => Uint8Array, options: KernelOptions = {}): NativeKernel {
  let kernel = kernels.get(key);
  if (kernel === undefined) {
    kernel = new NativeKernel(key, dtype, buildGraph(), options);
    kernels.set(key, kernel);
  }
  return kernel;
}

/** Dispose the cached kernels whose key `matches` (compiled blocks of a model that changed). */
export function disposeKernels(matches: (key: string) => boolean): void {
  for (const [key, kernel] of kernels) {
    if (!matches(key)) continue;
    kernel.dispose();
    kernels.delete(key);
  }
}
