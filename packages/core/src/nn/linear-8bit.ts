/**
 * Linear8bit: a frozen linear layer in LLM.int8()'s format (bitsandbytes' Linear8bitLt, what transformers loads
 * with `load_in_8bit`): int8 codes CB [out, in] and each row's absolute maximum SCB [out]
 * (quantization/vectorwise-int8.ts). It computes in int8 on onnxruntime's DynamicQuantizeMatMul, about three
 * times the speed of a float32 MatMul on CPUs with VNNI.
 *
 *   forward, x [N, in] -> [N, out] (LLM.int8's mixed decomposition):
 *     outlier features: the columns of x holding any |x| >= threshold (6 by default, bitsandbytes' llm_int8_threshold),
 *       multiplied in float32 with their weight columns dequantized;
 *     the rest vector-wise: each row of x divided by its absolute maximum r, so that DynamicQuantizeMatMul's
 *       one uint8 scale per tensor acts as one scale per row, then multiplied by r again
 *     y = r ⊙ DQMM(x_in / r, CBᵀ, SCB/127) + x_out · dequant(W_out)ᵀ
 *   input gradient, dy [N, out] -> [N, in]: dx = dy · dequant(W) = (dy ⊙ SCB/127) · CB, vector-wise the same way
 *     (bitsandbytes computes this product in float16; here it is int8, and the int8 experiment of
 *     benchmarks/int8-base.ts measures what that costs in loss)
 * The weight never exists in float32 except the outlier columns, transiently.
 */
import { Module } from '../module.ts';
import { Buffer, Parameter } from '../parameter.ts';
import { Tensor } from '../tensor.ts';
import { record } from '../autograd.ts';
import { GraphBuilder } from '../native/graph.ts';
import { nativeKernel } from '../native/session.ts';
import { formatShape } from '../shape.ts';
import { dequantizeInt8Rows, int8RowScales, quantizeInt8Rows } from '../quantization/vectorwise-int8.ts';

/** bitsandbytes' default llm_int8_threshold. */
export const LLM_INT8_THRESHOLD = 6;

/**
 * x [N, K] · B [K, M] with B int8 and one float scale per column of B (or a scalar), each row of x quantized on
 * its own scale: r = max |x_row| (1 for rows of zeros), r ⊙ DynamicQuantizeMatMul(x / r, B, scale).
 */
function vectorwiseNodes(g: GraphBuilder, x: string, b: string, scale: string): string {
  const rowMax = g.node('ReduceMax', [g.node('Abs', [x])], { axes: [1], keepdims: 1 }); // [N, 1]
  const r = g.node('Where', [g.node('Equal', [rowMax, g.scalar(0)]), g.scalar(1), rowMax]);
  return g.node('Mul', [g.node('DynamicQuantizeMatMul', [g.node('Div', [x, r]), b, scale], {}, 'com.microsoft'), r]);
}

/**
 * x [N, in] · dequant(W)ᵀ -> [N, out], W as codes [out, in] int8 and row scales [out] (SCB/127), the columns of x
 * with any |x| >= threshold in float32 (threshold 0: none).
 */
export function int8MatMulNodes(g: GraphBuilder, x: string, codes: string, scales: string, threshold: number): string {
  const codesT = g.node('Transpose', [codes], { perm: [1, 0] }); // [in, out]
  if (threshold <= 0) return vectorwiseNodes(g, x, codesT, scales);
  const columnMax = g.node('ReduceMax', [g.node('Abs', [x])], { axes: [0], keepdims: 0 }); // [in]
  const outlier = g.node('GreaterOrEqual', [columnMax, g.scalar(threshold)]);
  const inliers = g.node('Where', [outlier, g.scalar(0), x]);
  const columns = g.node('Reshape', [g.node('NonZero', [outlier]), g.int64Constant([-1])]); // [k] int64
  const outlierWeight = g.node('Mul', [g.node('Cast', [g.node('Gather', [codes, columns], { axis: 1 })], { to: 1 /* float32 */ }), g.node('Unsqueeze', [scales, g.int64Constant([1])])]); // [out, k]
  const outlierPart = g.node('MatMul', [g.node('Gather', [x, columns], { axis: 1 }), g.node('Transpose', [outlierWeight], { perm: [1, 0] })]);
  return g.node('Add', [vectorwiseNodes(g, inliers, codesT, scales), outlierPart]);
}

/** dy [N, out] · dequant(W) -> [N, in], as (dy ⊙ scales) · codes. */
export function int8InputGradNodes(g: GraphBuilder, dy: string, codes: string, scales: string): string {
  return vectorwiseNodes(g, g.node('Mul', [dy, scales]), codes, g.scalar(1));
}

/** The graphs make several copies of x as large as x: kept in onnxruntime's arena (without, 3x slower at SmolLM2's shapes). */
const ARENA = { arena: true };

function forwardGraph(threshold: number): Uint8Array {
  const g = new GraphBuilder('linear8bit_forward', 'float32');
  g.output(int8MatMulNodes(g, g.input('x'), g.input('codes', 'int8'), g.input('scales'), threshold));
  return g.build();
}

function inputGradientGraph(): Uint8Array {
  const g = new GraphBuilder('linear8bit_input_gradient', 'float32');
  g.output(int8InputGradNodes(g, g.input('dy'), g.input('codes', 'int8'), g.input('scales')));
  return g.build();
}

export class Linear8bit extends Module {
  /** CB: the int8 codes [out, in]. */
  weight: Buffer;
  /** SCB: each row's absolute maximum [out]. */
  SCB: Buffer;
  bias: Parameter | null;
  /** Columns of the input with any |x| at or above this are computed in float32 (0: none). */
  readonly threshold: number;
  #scales: Tensor | null = null;

  constructor(readonly inFeatures: number, readonly outFeatures: number, { bias = true, threshold = LLM_INT8_THRESHOLD } = {}) {
    super();
    this.weight = new Buffer(Tensor.zeros([outFeatures, inFeatures], 'int8'));
    this.SCB = new Buffer(Tensor.zeros([outFeatures]));
    this.bias = bias ? new Parameter(Tensor.zeros([outFeatures]), false) : null;
    this.threshold = threshold;
  }

  /** Quantize a float [out, in] weight (a Linear's) into a new layer. */
  static fromWeight(weight: Tensor, bias: Tensor | null, options: { threshold?: number } = {}): Linear8bit {
    const [outFeatures, inFeatures] = weight.shape;
    const layer = new Linear8bit(inFeatures, outFeatures, { bias: bias !== null, ...options });
    layer.setDenseWeight(weight);
    if (bias && layer.bias) layer.bias.values.set(bias.values);
    return layer;
  }

  denseWeight(): Tensor {
    return new Tensor(dequantizeInt8Rows({ codes: this.weight.data as Int8Array, absmax: this.SCB.values as Float32Array }), [this.outFeatures, this.inFeatures]);
  }

  /** Quantize `weight` [out, in] into this layer (what a merge into an 8-bit base does: lossy). */
  setDenseWeight(weight: Tensor): void {
    if (weight.shape[0] !== this.outFeatures || weight.shape[1] !== this.inFeatures) throw new Error(`Linear8bit: weight ${formatShape(weight.shape)} is not [${this.outFeatures}, ${this.inFeatures}]`);
    const { codes, absmax } = quantizeInt8Rows(weight.values as Float32Array, this.outFeatures, this.inFeatures);
    (this.weight.data as Int8Array).set(codes);
    this.SCB.values.set(absmax);
    this.#scales = null;
  }

  /** The codes [out, in] and row scales SCB/127 [out], as int8MatMulNodes takes them. */
  kernelInputs(): Tensor[] {
    this.#scales ??= new Tensor(int8RowScales(this.SCB.values as Float32Array), [this.outFeatures]);
    return [this.weight, this.#scales];
  }

  override derivedTensors(): Array<[string, Tensor]> {
    return [['scales', this.kernelInputs()[1]]];
  }

  forward(x: Tensor): Tensor {
    if (x.shape[x.ndim - 1] !== this.inFeatures) throw new Error(`Linear8bit(${this.inFeatures}, ${this.outFeatures}): input ${formatShape(x.shape)} does not end in ${this.inFeatures}`);
    const flat = x.reshape([-1, this.inFeatures]); // [N, in]
    const [y] = nativeKernel(`linear8bit_forward:${this.threshold}`, 'float32', () => forwardGraph(this.threshold), ARENA).run([flat, ...this.kernelInputs()]); // [N, out]
    const inputGradient = (dy: Tensor) => nativeKernel('linear8bit_input_gradient', 'float32', inputGradientGraph, ARENA).run([dy, ...this.kernelInputs()])[0];
    const out = record('linear8bit', y, [flat], (dy) => [() => inputGradient(dy)]);
    const withBias = this.bias === null ? out : out.add(this.bias);
    return withBias.reshape([...x.shape.slice(0, -1), this.outFeatures]);
  }

  override extraRepr(): string {
    return `in_features=${this.inFeatures}, out_features=${this.outFeatures}, bias=${this.bias !== null}, threshold=${this.threshold}`;
  }
}
