/**
 * Tensor: a shape and a typed array, row-major and contiguous.
 *
 *   const x = Tensor.fromArray([[1, 2], [3, 4]]);   // float32 [2, 2]
 *   x.requiresGrad = true;
 *   x.mul(x).sum().backward();                      // x.grad = 2x
 *
 * float32 is the compute dtype; float64 exists for gradient checks; int32 and
 * int64 hold token ids; uint8 holds packed 4-bit weights, int8 LLM.int8's weights. Tensors are immutable by convention: ops return new
 * tensors, and only in-place helpers (`init.*`, optimizers) write `data`.
 */
import { backward, type GradFn } from './autograd.ts';
import { Generator, defaultGenerator } from './random.ts';
import { formatShape, numel, type Shape } from './shape.ts';
import * as binary from './ops/binary.ts';
import * as unary from './ops/unary.ts';
import * as reduce from './ops/reduce.ts';
import * as layout from './ops/layout.ts';
import { matmul } from './ops/matmul.ts';
import { constant, traceAlias } from './compile/trace.ts';

export type FloatDType = 'float32' | 'float64';
export type DType = FloatDType | 'int32' | 'int64' | 'uint8' | 'int8';
export type FloatArray = Float32Array | Float64Array;
export type Storage = FloatArray | Int32Array | BigInt64Array | Uint8Array | Int8Array;
type NestedNumbers = number | NestedNumbers[];

const arrayTypes = { float32: Float32Array, float64: Float64Array, int32: Int32Array, int64: BigInt64Array, uint8: Uint8Array, int8: Int8Array } as const;

export function dtypeOf(data: Storage): DType {
  if (data instanceof Float32Array) return 'float32';
  if (data instanceof Float64Array) return 'float64';
  if (data instanceof Int32Array) return 'int32';
  if (data instanceof Uint8Array) return 'uint8';
  if (data instanceof Int8Array) return 'int8';
  return 'int64';
}

export class Tensor {
  readonly shape: readonly number[];
  readonly dtype: DType;
  data: Storage;
  requiresGrad = false;
  grad: Tensor | null = null;
  /** How this tensor was computed, while the tape holds it; null for leaves. */
  gradFn: GradFn | null = null;

  constructor(data: Storage, shape: Shape) {
    if (!shape.every((d) => Number.isInteger(d) && d >= 0)) throw new Error(`Tensor: invalid shape ${formatShape(shape)}`);
    if (data.length !== numel(shape)) {
      throw new Error(`Tensor: ${data.length} values do not fill shape ${formatShape(shape)}`);
    }
    this.data = data;
    this.shape = Object.freeze([...shape]);
    this.dtype = dtypeOf(data);
  }

  // ---- creation ----

  static zeros(shape: Shape, dtype: DType = 'float32'): Tensor {
    const zeros = new Tensor(new arrayTypes[dtype](numel(shape)), shape);
    return zeros.numel === 0 ? constant(zeros) : zeros; // NOTE: other zeros are often buffers an op fills
  }

  static ones(shape: Shape, dtype: FloatDType = 'float32'): Tensor {
    return Tensor.full(shape, 1, dtype);
  }

  static full(shape: Shape, value: number, dtype: FloatDType = 'float32'): Tensor {
    return constant(new Tensor(new arrayTypes[dtype](numel(shape)).fill(value), shape));
  }

  static scalar(value: number, dtype: FloatDType = 'float32'): Tensor {
    return Tensor.full([], value, dtype);
  }

  /** From nested arrays; the shape is read off the nesting. */
  static fromArray(values: NestedNumbers, dtype: DType = 'float32'): Tensor {
    const shape: number[] = [];
    for (let v = values; Array.isArray(v); v = v[0]) shape.push(v.length);
    const flat: number[] = [];
    const collect = (v: NestedNumbers): void => void (Array.isArray(v) ? v.forEach(collect) : flat.push(v));
    collect(values);
    if (flat.length !== numel(shape)) throw new Error('Tensor.fromArray: ragged nested array');
    const data = dtype === 'int64' ? BigInt64Array.from(flat, BigInt) : new arrayTypes[dtype](flat);
    return constant(new Tensor(data, shape));
  }

  static arange(n: number, dtype: DType = 'float32'): Tensor {
    return Tensor.fromArray(Array.from({ length: n }, (_, i) => i), dtype);
  }

  /** Standard normal samples from the seeded generator. */
  static randn(shape: Shape, { generator = defaultGenerator, dtype = 'float32' as FloatDType } = {}): Tensor {
    const data = new arrayTypes[dtype](numel(shape));
    for (let i = 0; i < data.length; i++) data[i] = generator.normal();
    return new Tensor(data, shape);
  }

  /** Uniform samples in [low, high) from the seeded generator. */
  static rand(shape: Shape, { low = 0, high = 1, generator = defaultGenerator as Generator, dtype = 'float32' as FloatDType } = {}): Tensor {
    const data = new arrayTypes[dtype](numel(shape));
    for (let i = 0; i < data.length; i++) data[i] = low + (high - low) * generator.uniform();
    return new Tensor(data, shape);
  }

  // ---- inspection ----

  get ndim(): number {
    return this.shape.length;
  }

  get numel(): number {
    return this.data.length;
  }

  get isFloat(): boolean {
    return this.dtype === 'float32' || this.dtype === 'float64';
  }

  /** Typed access to float data; throws for integer tensors. */
  get values(): FloatArray {
    if (!this.isFloat) throw new Error(`expected a float tensor, got ${this.dtype}`);
    return this.data as FloatArray;
  }

  item(): number {
    if (this.numel !== 1) throw new Error(`item: tensor of shape ${formatShape(this.shape)} has ${this.numel} elements`);
    return Number(this.data[0]);
  }

  toArray(): number[] {
    return Array.from(this.data as ArrayLike<number | bigint>, Number);
  }

  toString(): string {
    const head = this.toArray().slice(0, 8).map((v) => +v.toFixed(4));
    return `Tensor(${formatShape(this.shape)} ${this.dtype} [${head.join(', ')}${this.numel > 8 ? ', ...' : ''}])`;
  }

  // ---- autograd ----

  /** Accumulate d(this)/d(leaf) into every leaf that requires grad. */
  backward(grad?: Tensor): void {
    if (grad === undefined && this.numel !== 1) {
      throw new Error(`backward: a gradient is needed for a non-scalar tensor of shape ${formatShape(this.shape)}`);
    }
    backward(this, grad ?? Tensor.full(this.shape, 1, this.dtype as FloatDType));
  }

  requiresGrad_(flag = true): this {
    if (flag && !this.isFloat) throw new Error(`requiresGrad_: only float tensors can require grad, not ${this.dtype}`);
    this.requiresGrad = flag;
    return this;
  }

  /** A new leaf sharing this tensor's data, outside the tape. */
  detach(): Tensor {
    const out = new Tensor(this.data, this.shape);
    traceAlias(this, out);
    return out;
  }

  /** A leaf with a copy of the data. */
  clone(): Tensor {
    return new Tensor(this.data.slice(), this.shape);
  }

  to(dtype: DType): Tensor {
    if (dtype === this.dtype) return this;
    if (dtype === 'int64') return new Tensor(BigInt64Array.from(this.toArray(), (v) => BigInt(Math.trunc(v))), this.shape);
    return new Tensor(new arrayTypes[dtype](this.toArray()), this.shape);
  }

  // ---- method forms of the ops ----

  add(other: Tensor | number): Tensor { return binary.add(this, other); }
  sub(other: Tensor | number): Tensor { return binary.sub(this, other); }
  mul(other: Tensor | number): Tensor { return binary.mul(this, other); }
  div(other: Tensor | number): Tensor { return binary.div(this, other); }
  neg(): Tensor { return unary.neg(this); }
  exp(): Tensor { return unary.exp(this); }
  log(): Tensor { return unary.log(this); }
  sqrt(): Tensor { return unary.sqrt(this); }
  tanh(): Tensor { return unary.tanh(this); }
  rsqrt(): Tensor { return unary.rsqrt(this); }
  pow(exponent: number): Tensor { return unary.pow(this, exponent); }
  matmul(other: Tensor): Tensor { return matmul(this, other); }
  sum(axis?: number | number[], keepDims = false): Tensor { return reduce.sum(this, axis, keepDims); }
  mean(axis?: number | number[], keepDims = false): Tensor { return reduce.mean(this, axis, keepDims); }
  reshape(shape: Shape): Tensor { return layout.reshape(this, shape); }
  transpose(a = -2, b = -1): Tensor { return layout.transpose(this, a, b); }
  permute(axes: readonly number[]): Tensor { return layout.permute(this, axes); }
  get T(): Tensor { return layout.transpose(this, -2, -1); }
}

/** A float tensor of the same dtype as `like`. */
export function floatLike(like: Tensor, shape: Shape = like.shape): Tensor {
  return Tensor.zeros(shape, like.dtype === 'float64' ? 'float64' : 'float32');
}

/** Wrap a plain number as a scalar of the same dtype as `like`. */
export function asTensor(value: Tensor | number, like: Tensor): Tensor {
  return value instanceof Tensor ? value : Tensor.scalar(value, like.dtype === 'float64' ? 'float64' : 'float32');
}
