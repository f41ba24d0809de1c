/**
 * What a LoRA layer needs from the layer it wraps, whatever its storage:
 * the pieces of the fused native graph (y = base(x) and dx = base'ᵀ(dy)), and
 * the dense weight [out, in] for merging and DoRA. Linear and GPT-2's Conv1D
 * are seen through this view; 4-bit and 8-bit bases implement it directly, so QLoRA
 * (and LoRA over LLM.int8) is LoRA with another base.
 */
import { Tensor, type Module, type Parameter } from '@lorakit/core';
import { Linear, Linear4bit, Linear8bit, Conv1D } from '@lorakit/core/nn';
import { bnb4Node, dequantizeNodes, int8InputGradNodes, int8MatMulNodes, type GraphBuilder } from '@lorakit/core/native';

export interface LinearBase {
  readonly module: Module;
  readonly inFeatures: number;
  readonly outFeatures: number;
  readonly bias: Parameter | null;
  /** Names the graph variant in kernel keys. */
  readonly kernelKind: string;
  /** Tensors the forward graph piece reads, in order. */
  kernelInputs(): Tensor[];
  /** Tensors the input-gradient piece reads (asked for at backward time). */
  backwardInputs(): Tensor[];
  /** [N, in] -> [N, out], without the bias. */
  forwardNodes(g: GraphBuilder, x: string, inputs: string[]): string;
  /** [N, out] -> [N, in]: the gradient with respect to x. */
  inputGradNodes(g: GraphBuilder, dy: string, inputs: string[]): string;
  /** The weight as [out, in] float32 (a copy for transposed or quantized storage). */
  denseWeight(): Tensor;
  /** Replace the weight with a dense [out, in] one (merge and unmerge). */
  setDenseWeight(weight: Tensor): void;
  /**
   * The base's graph pieces make several large intermediates (the 8-bit base's scaled copies of x): the kernel
   * keeps its memory in onnxruntime's arena (docs/engine.md section 4).
   */
  readonly arena?: boolean;
  /** The stored weight when it is a plain trainable Parameter (Linear, Conv1D). */
  readonly weightParameter: Parameter | null;
  /**
   * The weight inputs with s·B·A added, in their stored layout (sB [out, r], A [r, in]), for bases stored
   * densely; absent for a 4-bit base.
   */
  withLowRankNodes?(g: GraphBuilder, inputs: string[], sB: string, a: string): string[];
}

/** A [rows, cols] float32 matrix as [cols, rows], copied. */
export function transpose2d(t: Tensor): Tensor {
  const [rows, cols] = t.shape;
  const out = new Float32Array(t.numel);
  const v = t.values;
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = v[r * cols + c];
  return new Tensor(out, [cols, rows]);
}

class LinearView implements LinearBase {
  readonly kernelKind = 'linear';
  constructor(readonly module: Linear) {}
  get inFeatures() { return this.module.inFeatures; }
  get outFeatures() { return this.module.outFeatures; }
  get bias() { return this.module.bias; }
  get weightParameter() { return this.module.weight; }
  kernelInputs() { return [this.module.weight]; }
  backwardInputs() { return [this.module.weight]; }
  forwardNodes(g: GraphBuilder, x: string, [w]: string[]) { return g.node('MatMul', [x, g.node('Transpose', [w], { perm: [1, 0] })]); }
  inputGradNodes(g: GraphBuilder, dy: string, [w]: string[]) { return g.node('MatMul', [dy, w]); }
  withLowRankNodes(g: GraphBuilder, [w]: string[], sB: string, a: string) { return [g.node('Gemm', [sB, a, w])]; }
  denseWeight() { return this.module.weight; }
  setDenseWeight(weight: Tensor) { this.module.weight.values.set(weight.values); }
}

/** GPT-2's Conv1D stores W [in, out] (PEFT's fan_in_fan_out). */
class Conv1DView implements LinearBase {
  readonly kernelKind = 'conv1d';
  constructor(readonly module: Conv1D) {}
  get inFeatures() { return this.module.inFeatures; }
  get outFeatures() { return this.module.outFeatures; }
  get bias() { return this.module.bias; }
  get weightParameter() { return this.module.weight; }
  kernelInputs() { return [this.module.weight]; }
  backwardInputs() { return [this.module.weight]; }
  forwardNodes(g: GraphBuilder, x: string, [w]: string[]) { return g.node('MatMul', [x, w]); }
  inputGradNodes(g: GraphBuilder, dy: string, [w]: string[]) { return g.node('MatMul', [dy, g.node('Transpose', [w], { perm: [1, 0] })]); }
  withLowRankNodes(g: GraphBuilder, [w]: string[], sB: string, a: string) { return [g.node('Gemm', [a, sB, w], { transA: 1, transB: 1 })]; } // W [in, out] + (s·B·A)ᵀ
  denseWeight() { return transpose2d(this.module.weight); }
  setDenseWeight(weight: Tensor) { this.module.weight.values.set(transpose2d(weight).values); }
}

/** A 4-bit base (QLoRA): MatMulBnb4 forward; the input gradient on the weight dequantized inside its graph. */
class Linear4bitView implements LinearBase {
  readonly weightParameter = null;
  constructor(readonly module: Linear4bit) {}
  get kernelKind() { const q = this.module.quantization; return `${q.quantType}-${q.blockSize}-${this.inFeatures}x${this.outFeatures}`; }
  get inFeatures() { return this.module.inFeatures; }
  get outFeatures() { return this.module.outFeatures; }
  get bias() { return this.module.bias; }
  kernelInputs() { return this.module.kernelInputs(); }
  backwardInputs() { return this.module.kernelInputs(); }
  forwardNodes(g: GraphBuilder, x: string, [packed, absmax]: string[]) { return bnb4Node(g, x, packed, absmax, this.inFeatures, this.outFeatures, this.module.quantization); }
  inputGradNodes(g: GraphBuilder, dy: string, [packed, absmax]: string[]) { return g.node('MatMul', [dy, dequantizeNodes(g, packed, absmax, this.inFeatures, this.outFeatures, this.module.quantization)]); }
  denseWeight() { return this.module.denseWeight(); }
  setDenseWeight(weight: Tensor) { this.module.setDenseWeight(weight); }
}

/** An 8-bit base (LLM.int8): int8 products on DynamicQuantizeMatMul both ways, outlier feature columns in float. */
class Linear8bitView implements LinearBase {
  readonly weightParameter = null;
  readonly arena = true;
  constructor(readonly module: Linear8bit) {}
  get kernelKind() { return `int8-${this.module.threshold}`; }
  get inFeatures() { return this.module.inFeatures; }
  get outFeatures() { return this.module.outFeatures; }
  get bias() { return this.module.bias; }
  kernelInputs() { return this.module.kernelInputs(); }
  backwardInputs() { return this.module.kernelInputs(); }
  forwardNodes(g: GraphBuilder, x: string, [codes, scales]: string[]) { return int8MatMulNodes(g, x, codes, scales, this.module.threshold); }
  inputGradNodes(g: GraphBuilder, dy: string, [codes, scales]: string[]) { return int8InputGradNodes(g, dy, codes, scales); }
  denseWeight() { return this.module.denseWeight(); }
  setDenseWeight(weight: Tensor) { this.module.setDenseWeight(weight); }
}

/** The base view of a layer, or an error naming what cannot be wrapped. */
export function baseOf(layer: Module): LinearBase {
  if (layer instanceof Linear) return new LinearView(layer);
  if (layer instanceof Conv1D) return new Conv1DView(layer);
  if (layer instanceof Linear4bit) return new Linear4bitView(layer);
  if (layer instanceof Linear8bit) return new Linear8bitView(layer);
  throw new Error(`LoRA cannot wrap a ${layer.constructor.name}; it applies to Linear, Conv1D and 4-bit and 8-bit linear layers`);
}
