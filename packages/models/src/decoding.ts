/**
 * Decoding on the decoder graph (export/decoder-graph.ts), the graph `lora export` ships: one onnxruntime
 * session per model structure, made on the first generate() and kept with the model.
 *
 *   weights      graph inputs, fed on every run: a step sees whatever training or a load wrote in place, and
 *                decoding reads every weight once per token either way (measured at SmolLM2 shapes, fed or
 *                baked in as initializers: the same tokens/s)
 *   the cache    two preallocated buffers per layer and part, of the capacity the generation needs: each step
 *                reads its past from one and onnxruntime writes the present into the other (no allocation per
 *                token; the graph's Concat still copies the past, a few MB a token against hundreds for weights)
 *   threads      spin between the graph's thousands of small ops (it runs alone, token after token)
 *   q4           the graph `lora export --dtype q4` writes, its 4-bit weights quantized from the model's as they
 *                are when generate() starts
 */
import { createHash } from 'node:crypto';
import { Tensor, type Module } from '@lorakit/core';
import { NativeKernel, modelBytes, type GraphValue } from '@lorakit/core/native';
import { decoderGraph, weightsOf, DECODER_OPSET, type DecoderGraph } from './export/decoder-graph.ts';
import { q4Inputs, withQ4Weights } from './export/matmul-nbits.ts';
import type { GenerativeModel } from './generation.ts';

type Decodable = GenerativeModel & Module;

export type DecoderDtype = 'fp32' | 'q4';

interface Built {
  signature: string;
  decoder: DecoderGraph;
  kernel: NativeKernel;
  /** The graph's input names in order: its own, then the weights'. */
  inputs: string[];
}

const built = new WeakMap<Module, Map<DecoderDtype, Built>>();

/** What decides the graph: the weights' names and shapes, and every module's compileKey (merged, an adapter's state). */
function signatureOf(model: Decodable): string {
  const weights = weightsOf(model).map(([name, t]) => `${name}:${t.dtype}[${t.shape}]`);
  const modules = model.namedModules().map(([, m]) => m.compileKey());
  return `${weights.join()}|${modules.join()}`;
}

/** Why `model` decodes op by op rather than on its graph, or null. */
function eagerBecause(model: Decodable): string | null {
  const hooked = model.namedModules().find(([, m]) => m.hasForwardHooks());
  return hooked === undefined ? null : `a forward hook on ${hooked[0] || 'the model'}`;
}

function build(model: Decodable, dtype: DecoderDtype): Built {
  const signature = signatureOf(model);
  const byDtype = built.get(model) ?? new Map<DecoderDtype, Built>();
  built.set(model, byDtype);
  const known = byDtype.get(dtype);
  if (known?.signature === signature) return known;
  const decoder = decoderGraph(model);
  const { graph, weights } = dtype === 'q4' ? withQ4Weights(decoder.graph, decoder.weights) : decoder;
  const weightInputs: GraphValue[] = [...weights].map(([name, t]) => [name, t.dtype as GraphValue[1], t.shape]);
  const read = new Set(graph.nodes.flatMap((node) => node.input));
  const bytes = modelBytes(graph.name, graph.nodes, [...graph.inputs, ...weightInputs], graph.outputs, graph.initializers.filter((c) => read.has(c.name)), DECODER_OPSET);
  const key = `decoder:${createHash('sha256').update(bytes).digest('hex').slice(0, 24)}`;
  const kernel = new NativeKernel(key, 'float32', bytes, { arena: true, spinning: true });
  const entry = { signature, decoder, kernel, inputs: [...graph.inputs, ...weightInputs].map(([name]) => name) };
  byDtype.set(dtype, entry);
  return entry;
}

export class GraphDecoder {
  /** [layer · 2 + part] -> the two buffers the steps alternate between. */
  readonly #buffers: Array<[Float32Array, Float32Array]>;
  /** The model's weights by graph name, and the 4-bit ones quantized from them. */
  readonly #weights: Map<string, Tensor>;
  #past = 0;
  #current = 0;

  private constructor(model: Decodable, readonly built: Built, readonly batch: number, readonly capacity: number) {
    const { layers, kvHeads, headDim } = built.decoder;
    const weights = new Map(weightsOf(model));
    this.#weights = new Map([...weights, ...q4Inputs(built.inputs, weights)]);
    const size = batch * kvHeads * capacity * headDim;
    this.#buffers = Array.from({ length: 2 * layers }, () => [new Float32Array(size), new Float32Array(size)]);
  }

  /** A decoder for `batch` rows of at most `capacity` positions, or the reason the model decodes op by op. */
  static for(model: Decodable, batch: number, capacity: number, dtype: DecoderDtype = 'fp32'): GraphDecoder | { eager: string } {
    const hooked = eagerBecause(model);
    if (hooked !== null) return { eager: hooked };
    try {
      return new GraphDecoder(model, build(model, dtype), batch, capacity);
    } catch (error) {
      return { eager: (error as Error).message };
    }
  }

  /** Forget the cache: the next step starts from position 0 (phi3's longrope switch runs the whole sequence again). */
  restart(): void {
    this.#past = 0;
  }

  /** One step: `ids` [B, T] after the cached positions; mask [B, past + T], positions [B, T]. Returns the logits [B, T, V]. */
  step(ids: number[][], mask: number[][], positions: number[][]): Tensor {
    const { decoder, kernel, inputs } = this.built;
    const total = this.#past + ids[0].length;
    if (total > this.capacity) throw new Error(`generate: ${total} positions exceed the decoder's capacity of ${this.capacity}`);
    const view = (buffer: Float32Array, length: number) => new Tensor(buffer.subarray(0, this.batch * decoder.kvHeads * length * decoder.headDim), [this.batch, decoder.kvHeads, length, decoder.headDim]);
    const feeds = new Map<string, Tensor>([['input_ids', int64(ids)], ['attention_mask', int64(mask)], ['position_ids', int64(positions)]]);
    const presents: Tensor[] = [];
    this.#buffers.forEach((pair, i) => {
      feeds.set(`past_key_values.${i >> 1}.${i & 1 ? 'value' : 'key'}`, view(pair[this.#current], this.#past));
      presents.push(view(pair[1 - this.#current], total));
    });
    const [logits] = kernel.run(inputs.map((name) => feeds.get(name) ?? this.#weights.get(name)!), [null, ...presents]);
    this.#current = 1 - this.#current;
    this.#past = total;
    return logits;
  }
}

function int64(rows: number[][]): Tensor {
  return new Tensor(BigInt64Array.from(rows.flat(), BigInt), [rows.length, rows[0].length]);
}
