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
 */
import { availableParallelism } from 'node:os';
import { Tensor as OrtTensor } from 'onnxruntime-node';
import { binding, initOrt } from 'onnxruntime-node/dist/binding.js';
import { Tensor, type Storage } from '../tensor.ts';
import type { ElemType } from './graph.ts';

type BindingSession = InstanceType<typeof binding.InferenceSession>;

const ortTypes = { float32: 'float32', float64: 'float64', int32: 'int32', int64: 'int64', uint8: 'uint8' } as const;

/** Intra-op threads: LORAKIT_THREADS, else every core. */
export function nativeThreads(): number {
  const fromEnv = Number(process.env.LORAKIT_THREADS);
  return Number.isInteger(fromEnv) && fromEnv > 0 ? fromEnv : availableParallelism();
}

let initialized = false;

// NOTE: float64 graphs (gradient checks) run with only the basic rewrites:
// onnxruntime's extended fusions (QuickGelu, FusedMatMul) have float32 kernels only.
function createSession(bytes: Uint8Array, key: string, dtype: ElemType): BindingSession {
  if (!initialized) {
    initOrt();
    initialized = true;
  }
  const session = new binding.InferenceSession();
  const buffer = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
  const options = {
    intraOpNumThreads: nativeThreads(),
    interOpNumThreads: 1,
    graphOptimizationLevel: dtype === 'float64' ? ('basic' as const) : ('all' as const),
    executionMode: 'sequential' as const,
    // NOTE: no arena: each session would keep its own peak-sized arena (measured: 13% less RSS, same speed).
    enableCpuMemArena: false,
    extra: { session: { intra_op: { allow_spinning: '0' }, inter_op: { allow_spinning: '0' } } },
  };
  try {
    session.loadModel(buffer, 0, buffer.byteLength, options);
  } catch (error) {
    throw new Error(`native kernel ${key}: onnxruntime rejected the graph: ${(error as Error).message}`);
  }
  return session;
}

export class NativeKernel {
  readonly #session: BindingSession;
  readonly #inputNames: string[];
  readonly #outputNames: string[];

  constructor(readonly key: string, dtype: ElemType, bytes: Uint8Array) {
    this.#session = createSession(bytes, key, dtype);
    this.#inputNames = this.#session.inputMetadata.map((m) => m.name);
    this.#outputNames = this.#session.outputMetadata.map((m) => m.name);
  }

  /** Run on tensors given in the graph's input order; returns outputs in order. */
  run(inputs: readonly Tensor[]): Tensor[] {
    if (inputs.length !== this.#inputNames.length) {
      throw new Error(`native kernel ${this.key}: expected ${this.#inputNames.length} inputs, got ${inputs.length}`);
    }
    const feeds: Record<string, OrtTensor> = {};
    inputs.forEach((t, i) => {
      feeds[this.#inputNames[i]] = new OrtTensor(ortTypes[t.dtype], t.data as never, [...t.shape]);
    });
    const fetches = Object.fromEntries(this.#outputNames.map((n) => [n, null]));
    let results;
    try {
      results = this.#session.run(feeds, fetches, {});
    } catch (error) {
      const shapes = inputs.map((t) => `[${t.shape}]`).join(', ');
      throw new Error(`native kernel ${this.key} on ${shapes}: ${(error as Error).message}`);
    }
    return this.#outputNames.map((n) => {
      const value = results[n] as OrtTensor;
      return new Tensor(value.data as Storage, value.dims);
    });
  }
}

const kernels = new Map<string, NativeKernel>();

/** The cached kernel for `key` (which should name the dtype), building its graph on first use. */
export function nativeKernel(key: string, dtype: ElemType, buildGraph: () => Uint8Array): NativeKernel {
  let kernel = kernels.get(key);
  if (kernel === undefined) {
    kernel = new NativeKernel(key, dtype, buildGraph());
    kernels.set(key, kernel);
  }
  return kernel;
}
