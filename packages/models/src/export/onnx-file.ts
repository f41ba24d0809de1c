/**
 * An ONNX model file: a graph and its weights as initializers, inline in the file or, when the whole would
 * pass protobuf's 2 GiB, in external data files beside it, named as transformers.js looks for them:
 *
 *   model.onnx          the graph (and the weights, when they fit)
 *   model.onnx_data     the weights, each at an offset aligned to 4096 bytes, a new file
 *   model.onnx_data_1   (and _2, ...) whenever the next weight would pass `chunkBytes`
 *
 * Each external initializer names its file, offset and length (ONNX's external_data), so onnxruntime reads
 * the files relative to the model's own path.
 */
import { closeSync, openSync, writeFileSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import type { Tensor } from '@lorakit/core';
import { bytesOf } from '@lorakit/core/io';
import { elemTypeNumber, modelBytes, type GraphBuilder, type GraphConstant } from '@lorakit/core/native';

const GIB = 2 ** 30;
/** A model whose weights take more than this goes external: protobuf's limit is 2 GiB, the graph needs room too. */
export const MAX_INLINE_BYTES = 2 * GIB - 64 * 2 ** 20;
const ALIGNMENT = 4096;

export interface OnnxFileOptions {
  opset: number;
  /** Weights above this many bytes in all go to external data (default MAX_INLINE_BYTES). */
  maxInlineBytes?: number;
  /** The most bytes in one external data file (default 2 GiB, what a browser reads as one buffer). */
  chunkBytes?: number;
}

/** Write `path` (and its external data, if needed); returns the names of the files written. */
export function writeOnnxFile(path: string, graph: GraphBuilder, weights: ReadonlyMap<string, Tensor>, { opset, maxInlineBytes = MAX_INLINE_BYTES, chunkBytes = 2 * GIB }: OnnxFileOptions): string[] {
  const total = [...weights.values()].reduce((n, t) => n + t.data.byteLength, 0);
  if (total <= maxInlineBytes) {
    writeFileSync(path, onnxModelBytes(graph, weights, opset));
    return [basename(path)];
  }
  const initializers: GraphConstant[] = [];
  const dataFiles = writeExternalData(path, weights, chunkBytes, (name, tensor, location) => initializers.push(externalConstant(name, tensor, location)));
  writeFileSync(path, modelWith(graph, initializers, opset));
  return [basename(path), ...dataFiles];
}

/** The model's bytes with every weight inline (under 2 GiB in all). */
export function onnxModelBytes(graph: GraphBuilder, weights: ReadonlyMap<string, Tensor>, opset: number): Uint8Array {
  return modelWith(graph, [...weights].map(([name, tensor]) => ({ name, dims: [...tensor.shape], dataType: elemTypeNumber(tensor.dtype), rawData: bytesOf(tensor.data) })), opset);
}

/** The graph's bytes with its constants and `weights`, those no node reads left out. */
function modelWith(graph: GraphBuilder, weights: readonly GraphConstant[], opset: number): Uint8Array {
  const read = new Set(graph.nodes.flatMap((node) => node.input));
  const constants = [...graph.initializers, ...weights].filter((c) => read.has(c.name));
  return modelBytes(graph.name, graph.nodes, graph.inputs, graph.outputs, constants, opset);
}

interface Location {
  file: string;
  offset: number;
  length: number;
}

function externalConstant(name: string, tensor: Tensor, { file, offset, length }: Location): GraphConstant {
  const entries = { location: file, offset: String(offset), length: String(length) };
  return { name, dims: [...tensor.shape], dataType: elemTypeNumber(tensor.dtype), dataLocation: 1, externalData: Object.entries(entries).map(([key, value]) => ({ key, value })) };
}

/** The weights into `<path>_data`, `_data_1`, ... ; `placed` is told where each went. Returns the files' names. */
function writeExternalData(path: string, weights: ReadonlyMap<string, Tensor>, chunkBytes: number, placed: (name: string, tensor: Tensor, at: Location) => void): string[] {
  const files: string[] = [];
  let fd: number | null = null;
  let offset = 0;
  try {
    for (const [name, tensor] of weights) {
      const bytes = bytesOf(tensor.data);
      let at = Math.ceil(offset / ALIGNMENT) * ALIGNMENT;
      if (fd === null || (at + bytes.length > chunkBytes && offset > 0)) {
        if (fd !== null) closeSync(fd);
        files.push(`${basename(path)}_data${files.length === 0 ? '' : `_${files.length}`}`);
        fd = openSync(join(dirname(path), files[files.length - 1]), 'w');
        [offset, at] = [0, 0];
      }
      writeSync(fd, bytes, 0, bytes.length, at);
      placed(name, tensor, { file: files[files.length - 1], offset: at, length: bytes.length });
      offset = at + bytes.length;
    }
  } finally {
    if (fd !== null) closeSync(fd);
  }
  return files;
}
