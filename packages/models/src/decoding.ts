/**
 * Decoding on the decoder graph (export/decoder-graph.ts), the graph `lora export` ships: one onnxruntime
 * session per model, made on the first generate() and kept with the model.
 *
 *   weights      baked in as initializers, which onnxruntime prepacks (fed as inputs instead, SmolLM2 shapes decode
 *                20% slower). The session is made again when the model's structure changes (a merge, an adapter) or a
 *                weight does, as seen in a sample of 128 of its values (a load, an optimizer step); forgetDecoder()
 *                drops it by hand (an edit of a few values in place)
 *   the cache    two preallocated buffers per layer and part, of the capacity the generation needs: each step
 *                reads its past from one and onnxruntime writes the present into the other (no allocation per
 *                token; the graph's Concat still copies the past, a few MB a token against hundreds for weights)
 *   threads      spin between the graph's thousands of small ops (it runs alone, token after token)
 *   q4           the graph `lora export --dtype q4` writes, every weight baked in, the 4-bit ones quantized from the
 *                model's as they are when generate() starts, for that generation
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Tensor, type Module } from '@lorakit/core';
import { GraphBuilder, NativeKernel, type ModelSource } from '@lorakit/core/native';
import { decoderGraph, weightsOf, DECODER_OPSET, type DecoderGraph } from './export/decoder-graph.ts';
import { withQ4Weights } from './export/matmul-nbits.ts';
import { MAX_INLINE_BYTES, onnxModelBytes, writeOnnxFile } from './export/onnx-file.ts';
import type { GenerativeModel } from './generation.ts';

type Decodable = GenerativeModel & Module;

export type DecoderDtype = 'fp32' | 'q4';

/** A model's decoder graph, and its float32 session once a generation asked for one. */
interface Built {
  signature: string;
  decoder: DecoderGraph;
  session: Session | null;
}

interface Session {
  kernel: NativeKernel;
  /** The session's inputs in order, by name. */
  inputs: string[];
}

const built = new WeakMap<Module, Built>();

/** What decides the session: the weights' names, shapes and a sample of their values, every module's compileKey. */
function signatureOf(model: Decodable): string {
  const weights = weightsOf(model).map(([name, t]) => `${name}:${t.dtype}[${t.shape}]${sampleOf(t)}`);
  const modules = model.namedModules().map(([, m]) => m.compileKey());
  return createHash('sha256').update(`${weights.join()}|${modules.join()}`).digest('hex');
}

/** 128 values spread over the tensor, the last included, as text. */
function sampleOf(t: Tensor): string {
  const data = t.data;
  const step = Math.max(1, Math.floor(data.length / 128));
  let text = '';
  for (let i = 0; i < data.length; i += step) text += `${data[i]},`;
  return `${text}${data[data.length - 1]}`;
}

/** Drop the session generate() keeps for `model`: the next generation makes it again from the weights as they are. */
export function forgetDecoder(model: Module): void {
  built.get(model)?.session?.kernel.dispose();
  built.delete(model);
}

/** Why `model` decodes op by op rather than on its graph, or null. */
function eagerBecause(model: Decodable): string | null {
  const hooked = model.namedModules().find(([, m]) => m.hasForwardHooks());
  return hooked === undefined ? null : `a forward hook on ${hooked[0] || 'the model'}`;
}

function build(model: Decodable): Built {
  const signature = signatureOf(model);
  const known = built.get(model);
  if (known?.signature === signature) return known;
  forgetDecoder(model);
  const entry = { signature, decoder: decoderGraph(model), session: null };
  built.set(model, entry);
  return entry;
}

/**
 * A session of `graph` with `weights` baked in. Weights over protobuf's 2 GiB go through an ONNX file with external
 * data, in a temporary folder removed once onnxruntime has read it.
 */
function sessionOf(graph: GraphBuilder, weights: ReadonlyMap<string, Tensor>): Session {
  const inputs = graph.inputs.map(([name]) => name);
  const options = { arena: true, spinning: true, keepGraph: false };
  const bytes = [...weights.values()].reduce((n, t) => n + t.data.byteLength, 0);
  if (bytes <= MAX_INLINE_BYTES) return { kernel: new NativeKernel('decoder', 'float32', onnxModelBytes(graph, weights, DECODER_OPSET), options), inputs };
  const folder = mkdtempSync(join(tmpdir(), 'lorakit-decoder-'));
  try {
    const path = join(folder, 'model.onnx');
    writeOnnxFile(path, graph, weights, { opset: DECODER_OPSET });
    return { kernel: new NativeKernel('decoder', 'float32', { path } satisfies ModelSource, options), inputs };
  } finally {
    rmSync(folder, { recursive: true, force: true });
  }
}

/** The q4 session for the model's weights as they are now, all baked in (MatMulNBits is fast only on initializers). */
function q4Session(model: Decodable, decoder: DecoderGraph): Session {
  const current = new Map(weightsOf(model));
  const { graph, weights } = withQ4Weights(decoder.graph, new Map([...decoder.weights.keys()].map((name) => [name, current.get(name)!])));
  return sessionOf(graph, weights);
}

export class GraphDecoder {
  /** [layer · 2 + part] -> the two buffers the steps alternate between. */
  readonly #buffers: Array<[Float32Array, Float32Array]>;
  readonly #decoder: DecoderGraph;
  readonly #kernel: NativeKernel;
  readonly #inputs: string[];
  /** A session made for this generation alone (q4), disposed by finish(). */
  readonly #own: boolean;
  #past = 0;
  #current = 0;

  private constructor(model: Decodable, dtype: DecoderDtype, readonly batch: number, readonly capacity: number) {
    const entry = build(model);
    const { decoder } = entry;
    const session = dtype === 'q4' ? q4Session(model, decoder) : (entry.session ??= sessionOf(decoder.graph, decoder.weights));
    [this.#decoder, this.#kernel, this.#inputs, this.#own] = [decoder, session.kernel, session.inputs, dtype === 'q4'];
    const size = batch * decoder.kvHeads * capacity * decoder.headDim;
    this.#buffers = Array.from({ length: 2 * decoder.layers }, () => [new Float32Array(size), new Float32Array(size)]);
  }

  /** A decoder for `batch` rows of at most `capacity` positions, or the reason the model decodes op by op. */
  static for(model: Decodable, batch: number, capacity: number, dtype: DecoderDtype = 'fp32'): GraphDecoder | { eager: string } {
    const hooked = eagerBecause(model);
    if (hooked !== null) return { eager: hooked };
    try {
      return new GraphDecoder(model, dtype, batch, capacity);
    } catch (error) {
      return { eager: (error as Error).message };
    }
  }

  /** Forget the cache: the next step starts from position 0 (phi3's longrope switch runs the whole sequence again). */
  restart(): void {
    this.#past = 0;
  }

  /** Release what this generation alone used (q4's session). */
  finish(): void {
    if (this.#own) this.#kernel.dispose();
  }

  /** One step: `ids` [B, T] after the cached positions; mask [B, past + T], positions [B, T]. Returns the logits [B, T, V]. */
  step(ids: number[][], mask: number[][], positions: number[][]): Tensor {
    const { kvHeads, headDim } = this.#decoder;
    const total = this.#past + ids[0].length;
    if (total > this.capacity) throw new Error(`generate: ${total} positions exceed the decoder's capacity of ${this.capacity}`);
    const view = (buffer: Float32Array, length: number) => new Tensor(buffer.subarray(0, this.batch * kvHeads * length * headDim), [this.batch, kvHeads, length, headDim]);
    const feeds = new Map<string, Tensor>([['input_ids', int64(ids)], ['attention_mask', int64(mask)], ['position_ids', int64(positions)]]);
    const presents: Tensor[] = [];
    this.#buffers.forEach((pair, i) => {
      feeds.set(`past_key_values.${i >> 1}.${i & 1 ? 'value' : 'key'}`, view(pair[this.#current], this.#past));
      presents.push(view(pair[1 - this.#current], total));
    });
    const [logits] = this.#kernel.run(this.#inputs.map((name) => feeds.get(name)!), [null, ...presents]);
    this.#current = 1 - this.#current;
    this.#past = total;
    return logits;
  }
}

function int64(rows: number[][]): Tensor {
  return new Tensor(BigInt64Array.from(rows.flat(), BigInt), [rows.length, rows[0].length]);
}
