/**
 * Linear4bit: a frozen linear layer whose weight is stored in 4 bits, in
 * bitsandbytes' format (NF4 or FP4, blockwise absmax, optional double
 * quantization), computed by onnxruntime's MatMulBnb4 without ever holding
 * the float weight.
 *
 *   y  = x · dequant(W)ᵀ + b          MatMulBnb4(x, W, absmax)
 *   dx = dy · dequant(W)               a MatMul on the weight dequantized inside the graph
 * NOTE: onnxruntime 1.30's MatMulBnb4 with transB = 0 fails its shape check or
 * crashes on the CPU, so the input gradient's graph dequantizes the codes itself
 * (dequantizeNodes: each byte's two codebook values looked up, times each block's absmax, the same
 * float32 products as dequantize4bit), transiently, one layer at a time.
 *
 * Memory: 0.5 byte per weight, plus 1 byte per block with double
 * quantization (4 bytes without); the float absmax is rebuilt per call.
 * Its state dict uses bitsandbytes' keys: weight, weight.absmax,
 * weight.quant_map, weight.nested_absmax, weight.nested_quant_map and
 * weight.quant_state.bitsandbytes__<type>.
 */
import { Module } from '../module.ts';
import { Buffer, Parameter } from '../parameter.ts';
import { Tensor } from '../tensor.ts';
import { record } from '../autograd.ts';
import { GraphBuilder } from '../native/graph.ts';
import { nativeKernel } from '../native/session.ts';
import { formatShape } from '../shape.ts';
import { codebook, DYNAMIC, type QuantType } from '../quantization/codebooks.ts';
import { dequantize4bit, quantize4bit } from '../quantization/blockwise-4bit.ts';
import { doubleQuantize, expandAbsmax, type DoubleQuantized } from '../quantization/double-quant.ts';
import { quote } from '../io/errors.ts';

export interface Quantization4bit {
  quantType: QuantType;
  blockSize: number;
  doubleQuant: boolean;
}

/** The MatMulBnb4 node for x·dequant(W)ᵀ (K = in, N = out; B and absmax 1-D). */
export function bnb4Node(g: GraphBuilder, x: string, packed: string, absmax: string, inFeatures: number, outFeatures: number, q: Quantization4bit): string {
  const attributes = { K: inFeatures, N: outFeatures, block_size: q.blockSize, quant_type: q.quantType === 'nf4' ? 1 : 0 };
  return g.node('MatMulBnb4', [x, packed, absmax], attributes, 'com.microsoft');
}

/**
 * dequant(W) [out, in] from the packed codes [n/2] uint8 (two per byte, the high nibble first) and the float absmax
 * [blocks]: code[nibble]·absmax[i / blockSize], as dequantize4bit computes it.
 */
export function dequantizeNodes(g: GraphBuilder, packed: string, absmax: string, inFeatures: number, outFeatures: number, q: Quantization4bit): string {
  const n = inFeatures * outFeatures;
  const blocks = Math.ceil(n / q.blockSize);
  const code = codebook(q.quantType);
  const pairs = g.float32Constant(Array.from({ length: 256 }, (_, byte) => [code[byte >> 4], code[byte & 0x0f]]).flat(), [256, 2]); // a byte's two values
  const looked = g.node('Gather', [pairs, g.node('Cast', [packed], { to: 6 })]); // [n/2, 2]
  let values = g.node('Reshape', [looked, g.int64Constant([-1])]); // [n]
  if (blocks * q.blockSize !== n) values = g.node('Pad', [values, g.int64Constant([0, blocks * q.blockSize - n])]); // the last block is partial
  const scaled = g.node('Mul', [g.node('Reshape', [values, g.int64Constant([blocks, q.blockSize])]), g.node('Unsqueeze', [absmax, g.int64Constant([1])])]);
  const flat = g.node('Slice', [g.node('Reshape', [scaled, g.int64Constant([-1])]), g.int64Constant([0]), g.int64Constant([n])]);
  return g.node('Reshape', [flat, g.int64Constant([outFeatures, inFeatures])]);
}

/** dx [N, in] = dy [N, out] · dequant(W) */
function inputGradientGraph(inFeatures: number, outFeatures: number, q: Quantization4bit): Uint8Array {
  const g = new GraphBuilder('linear4bit_input_gradient', 'float32');
  const dy = g.input('dy');
  g.output(g.node('MatMul', [dy, dequantizeNodes(g, g.input('w', 'uint8'), g.input('absmax'), inFeatures, outFeatures, q)]));
  return g.build();
}

function bnb4Graph(inFeatures: number, outFeatures: number, q: Quantization4bit): Uint8Array {
  const g = new GraphBuilder('matmul_bnb4', 'float32');
  g.output(bnb4Node(g, g.input('x'), g.input('w', 'uint8'), g.input('absmax'), inFeatures, outFeatures, q));
  return g.build();
}

export class Linear4bit extends Module {
  /** The packed codes, bitsandbytes' [ceil(n / 2), 1] uint8. */
  weight: Buffer;
  bias: Parameter | null;
  absmax: Float32Array | null;
  double: DoubleQuantized | null;

  constructor(readonly inFeatures: number, readonly outFeatures: number, readonly quantization: Quantization4bit, { bias = true } = {}) {
    super();
    const n = inFeatures * outFeatures;
    const blocks = Math.ceil(n / quantization.blockSize);
    this.weight = new Buffer(new Tensor(new Uint8Array(Math.ceil(n / 2)), [Math.ceil(n / 2), 1]));
    this.bias = bias ? new Parameter(Tensor.zeros([outFeatures]), false) : null;
    this.absmax = quantization.doubleQuant ? null : new Float32Array(blocks);
    this.double = quantization.doubleQuant ? { quantized: new Uint8Array(blocks), nestedAbsmax: new Float32Array(Math.ceil(blocks / 256)), offset: 0, nestedBlockSize: 256 } : null;
  }

  /** A layer from already quantized state (quantizeParallel's output). */
  static fromQuantized(inFeatures: number, outFeatures: number, quantization: Quantization4bit, state: { packed: Uint8Array; absmax: Float32Array; double: DoubleQuantized | null }, bias: Tensor | null): Linear4bit {
    const layer = new Linear4bit(inFeatures, outFeatures, quantization, { bias: bias !== null });
    (layer.weight.data as Uint8Array).set(state.packed);
    if (quantization.doubleQuant) layer.double = state.double ?? doubleQuantize(state.absmax);
    else layer.absmax = state.absmax;
    if (bias && layer.bias) layer.bias.values.set(bias.values);
    return layer;
  }

  /** Quantize a float [out, in] weight (a Linear's) into a new layer. */
  static fromWeight(weight: Tensor, bias: Tensor | null, quantization: Quantization4bit): Linear4bit {
    const [outFeatures, inFeatures] = weight.shape;
    const layer = new Linear4bit(inFeatures, outFeatures, quantization, { bias: bias !== null });
    layer.setDenseWeight(weight);
    if (bias && layer.bias) layer.bias.values.set(bias.values);
    return layer;
  }

  get quantType(): QuantType {
    return this.quantization.quantType;
  }

  /** The per-block absmax as float32 (rebuilt from the double quantization when there is one). */
  floatAbsmax(): Float32Array {
    return this.absmax ?? expandAbsmax(this.double!);
  }

  denseWeight(): Tensor {
    const n = this.inFeatures * this.outFeatures;
    return new Tensor(dequantize4bit(this.weight.data as Uint8Array, this.floatAbsmax(), this.quantType, this.quantization.blockSize, n), [this.outFeatures, this.inFeatures]);
  }

  /** Quantize `weight` [out, in] into this layer (what a merge into a 4-bit base does: lossy). */
  setDenseWeight(weight: Tensor): void {
    if (weight.shape[0] !== this.outFeatures || weight.shape[1] !== this.inFeatures) throw new Error(`Linear4bit: weight ${formatShape(weight.shape)} is not [${this.outFeatures}, ${this.inFeatures}]`);
    const { packed, absmax } = quantize4bit(weight.values as Float32Array, this.quantType, this.quantization.blockSize);
    (this.weight.data as Uint8Array).set(packed);
    if (this.double) this.double = doubleQuantize(absmax);
    else this.absmax = absmax;
  }

  /** The packed codes and float absmax, 1-D, as MatMulBnb4 takes them. */
  kernelInputs(): Tensor[] {
    return [this.weight.reshape([this.weight.numel]), this.#absmaxTensor()];
  }

  /** The float absmax as a tensor, made again only when the quantized state is replaced. */
  #absmaxMemo: { state: object; tensor: Tensor } | null = null;
  #absmaxTensor(): Tensor {
    const state = this.absmax ?? this.double!;
    if (this.#absmaxMemo?.state !== state) {
      const absmax = this.floatAbsmax();
      this.#absmaxMemo = { state, tensor: new Tensor(absmax, [absmax.length]) };
    }
    return this.#absmaxMemo.tensor;
  }

  override derivedTensors(): Array<[string, Tensor]> {
    return [['absmax_float', this.#absmaxTensor()]];
  }

  forward(x: Tensor): Tensor {
    if (x.shape[x.ndim - 1] !== this.inFeatures) throw new Error(`Linear4bit(${this.inFeatures}, ${this.outFeatures}): input ${formatShape(x.shape)} does not end in ${this.inFeatures}`);
    const flat = x.reshape([-1, this.inFeatures]); // [N, in]
    const q = this.quantization;
    const shape = `${this.inFeatures}:${this.outFeatures}:${q.quantType}:${q.blockSize}`;
    const [y] = nativeKernel(`matmul_bnb4:${shape}`, 'float32', () => bnb4Graph(this.inFeatures, this.outFeatures, q)).run([flat, ...this.kernelInputs()]); // [N, out]
    const inputGradient = (dy: Tensor) => nativeKernel(`linear4bit_input_gradient:${shape}`, 'float32', () => inputGradientGraph(this.inFeatures, this.outFeatures, q)).run([dy, ...this.kernelInputs()])[0];
    const out = record('linear4bit', y, [flat], (dy) => [() => inputGradient(dy)]);
    const withBias = this.bias === null ? out : out.add(this.bias);
    return withBias.reshape([...x.shape.slice(0, -1), this.outFeatures]);
  }

  /**
   * Take the quantized state a checkpoint holds (bitsandbytes' keys, the part
   * after `weight`): '' (the codes), '.absmax', '.nested_absmax',
   * '.nested_quant_map', '.quant_state.bitsandbytes__<type>'. Throws naming
   * what does not fit this layer.
   */
  loadQuantized(parts: Map<string, Tensor>, where: string): void {
    const q = this.quantization;
    const get = (suffix: string) => {
      const t = parts.get(suffix);
      if (t === undefined) throw new Error(`${where}: weight${suffix} is missing`);
      return t;
    };
    const state = JSON.parse(new TextDecoder().decode(get(`.quant_state.bitsandbytes__${q.quantType}`).data as Uint8Array)) as Record<string, unknown>;
    const shape = state.shape as number[];
    if (state.quant_type !== q.quantType || state.blocksize !== q.blockSize || shape?.[0] !== this.outFeatures || shape?.[1] !== this.inFeatures) {
      throw new Error(`${where}: quant_state ${quote(state)} does not fit ${this.extraRepr()}`);
    }
    const codes = get('');
    if (codes.numel !== this.weight.numel) throw new Error(`${where}: weight holds ${codes.numel} bytes, expected ${this.weight.numel}`);
    (this.weight.data as Uint8Array).set(codes.data as Uint8Array);
    const absmax = get('.absmax');
    if (this.double) {
      this.double = {
        quantized: Uint8Array.from(absmax.data as Uint8Array), nestedAbsmax: Float32Array.from(get('.nested_absmax').values),
        offset: Number(state.nested_offset), nestedBlockSize: Number(state.nested_blocksize), nestedCode: Float32Array.from(get('.nested_quant_map').values),
      };
    } else {
      this.absmax = Float32Array.from(absmax.values);
    }
  }

  /** bitsandbytes' checkpoint keys beside `weight` (and `bias`). */
  override ownTensors(): Array<[string, Parameter | Buffer]> {
    const q = this.quantization;
    const own = super.ownTensors();
    const extra: Array<[string, Tensor]> = [];
    if (this.double) {
      extra.push(['weight.absmax', new Tensor(this.double.quantized, [this.double.quantized.length])]);
      extra.push(['weight.nested_absmax', new Tensor(this.double.nestedAbsmax, [this.double.nestedAbsmax.length])]);
      extra.push(['weight.nested_quant_map', new Tensor(this.double.nestedCode ?? DYNAMIC, [256])]);
    } else {
      extra.push(['weight.absmax', new Tensor(this.absmax!, [this.absmax!.length])]);
    }
    extra.push(['weight.quant_map', new Tensor(codebook(q.quantType), [16])]);
    const state: Record<string, unknown> = { quant_type: q.quantType, blocksize: q.blockSize, dtype: 'float32', shape: [this.outFeatures, this.inFeatures] };
    if (this.double) Object.assign(state, { nested_blocksize: this.double.nestedBlockSize, nested_dtype: 'float32', nested_offset: this.double.offset });
    extra.push([`weight.quant_state.bitsandbytes__${q.quantType}`, new Tensor(new TextEncoder().encode(JSON.stringify(state)), [JSON.stringify(state).length])]);
    return [...own, ...extra.map(([k, t]) => [k, new Buffer(t)] as [string, Buffer])];
  }

  override extraRepr(): string {
    const q = this.quantization;
    return `in_features=${this.inFeatures}, out_features=${this.outFeatures}, bias=${this.bias !== null}, quant_type=${q.quantType}, blocksize=${q.blockSize}, double_quant=${q.doubleQuant}`;
  }
}
