/**
 * 4-bit weights for onnxruntime's com.microsoft.MatMulNBits (bits 4, block_size 32, symmetric), the format
 * transformers.js loads as `dtype: 'q4'`.
 *
 *   weight [N, K] (a Linear's [out, in])  ->  packed uint8 [N, ⌈K/32⌉, 16], scales float32 [N, ⌈K/32⌉]
 *   per block of 32 along K: m = the value of largest |w|, scale = m / −8, q = clamp(round(w / scale) + 8, 0, 15)
 *   byte j of a block holds element 2j in its low nibble and 2j + 1 in its high one; w ≈ (q − 8) · scale
 *   (a block shorter than 32 at the end of K is padded with zeros)
 *
 * In the graph, each MatMul whose right side is a weight read through Transpose (a Linear: x·Wᵀ) becomes
 * MatMulNBits on that weight's 4-bit form. LoRA's own matrices stay float32, as do weights read otherwise
 * (the embedding's Gather).
 */
import { Tensor } from '@lorakit/core';
import { GraphBuilder } from '@lorakit/core/native';

export const Q4_BLOCK = 32;
const BLOB = Q4_BLOCK / 2;

export interface Q4Weight {
  packed: Tensor; // uint8 [N, blocks, 16]
  scales: Tensor; // float32 [N, blocks]
}

export function quantizeQ4(weight: Tensor): Q4Weight {
  const [n, k] = weight.shape;
  const blocks = Math.ceil(k / Q4_BLOCK);
  const w = weight.values as Float32Array;
  const packed = new Uint8Array(n * blocks * BLOB);
  const scales = new Float32Array(n * blocks);
  const codes = new Uint8Array(Q4_BLOCK);
  for (let row = 0; row < n; row++) {
    for (let b = 0; b < blocks; b++) {
      const from = row * k + b * Q4_BLOCK;
      const length = Math.min(Q4_BLOCK, k - b * Q4_BLOCK);
      let extreme = 0;
      let largest = 0;
      for (let i = 0; i < length; i++) {
        const v = w[from + i];
        const magnitude = v < 0 ? -v : v;
        if (magnitude > largest) {
          largest = magnitude;
          extreme = v;
        }
      }
      const scale = Math.fround(extreme / -8);
      scales[row * blocks + b] = scale;
      const inverse = scale === 0 ? 0 : 1 / scale;
      codes.fill(8); // padding past K: zeros
      for (let i = 0; i < length; i++) {
        const q = (w[from + i] * inverse + 8.5) | 0; // round(w / scale) + 8, as floor(x + 0.5): Math.round is several times slower
        codes[i] = q < 0 ? 0 : q > 15 ? 15 : q;
      }
      const at = (row * blocks + b) * BLOB;
      for (let j = 0; j < BLOB; j++) packed[at + j] = codes[2 * j] | (codes[2 * j + 1] << 4);
    }
  }
  return { packed: new Tensor(packed, [n, blocks, BLOB]), scales: new Tensor(scales, [n, blocks]) };
}

/** Whether a weight is a base weight to quantize (LoRA's small matrices are not). */
function quantizable(name: string, weight: Tensor): boolean {
  return weight.dtype === 'float32' && weight.ndim === 2 && !/\.lora_[AB]\./.test(name);
}

/**
 * `graph` with every x·Wᵀ on a quantizable weight W as MatMulNBits, and the weights it then reads (W's
 * float form dropped unless something else still reads it).
 */
export function withQ4Weights(graph: GraphBuilder, weights: ReadonlyMap<string, Tensor>): { graph: GraphBuilder; weights: Map<string, Tensor> } {
  const transposed = new Map<string, string>(); // Transpose output -> weight name
  for (const node of graph.nodes) {
    const [input] = node.input;
    if (node.opType === 'Transpose' && weights.has(input) && quantizable(input, weights.get(input)!)) transposed.set(node.output[0], input);
  }
  const out = new GraphBuilder(graph.name, graph.dtype);
  for (const [name, type, shape] of graph.inputs) out.input(name, type, shape);
  for (const [name, type, shape] of graph.outputs) out.output(name, type, shape);
  for (const constant of graph.initializers) out.addInitializer(constant);
  const extra = new Map<string, Tensor>();
  for (const node of graph.nodes) {
    const weight = node.opType === 'MatMul' ? transposed.get(node.input[1]) : undefined;
    if (weight === undefined) out.addNode(node);
    else out.namedNode('MatMulNBits', [node.input[0], ...q4Of(weight, weights, extra)], node.output, matMulNBitsAttributes(weights.get(weight)!), 'com.microsoft');
  }
  const read = new Set(out.nodes.flatMap((node) => node.input));
  const kept = new Map([...weights, ...extra].filter(([name]) => read.has(name)));
  return { graph: out, weights: kept };
}

/** The graph names of a weight's packed codes and scales. */
function q4Names(weight: string): [string, string] {
  return [`${weight}_Q4`, `${weight}_scales`];
}

/** The names of `weight`'s packed codes and scales, quantized the first time a node asks. */
function q4Of(weight: string, weights: ReadonlyMap<string, Tensor>, extra: Map<string, Tensor>): [string, string] {
  const names = q4Names(weight);
  if (!extra.has(names[0])) {
    const { packed, scales } = quantizeQ4(weights.get(weight)!);
    extra.set(names[0], packed).set(names[1], scales);
  }
  return names;
}

function matMulNBitsAttributes(weight: Tensor): Record<string, number> {
  const [n, k] = weight.shape;
  return { K: k, N: n, bits: 4, block_size: Q4_BLOCK };
}
