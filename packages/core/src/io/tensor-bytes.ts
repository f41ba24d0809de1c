/** Tensor -> little-endian bytes in a chosen safetensors dtype. */
import type { Tensor } from '../tensor.ts';
import { f32ArrayToBf16, f32ArrayToF16 } from '../dtype.ts';
import type { SafetensorsDtype } from './dtypes.ts';

/** The bytes of a typed array, shared (no copy). */
export function bytesOf(a: ArrayBufferView): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

export function tensorToBytes(t: Tensor, dtype: SafetensorsDtype): Uint8Array {
  const floats = () => (t.data instanceof Float32Array ? t.data : Float32Array.from(t.data as ArrayLike<number>));
  const numbers = () => Array.from(t.data as ArrayLike<number | bigint>, Number);
  switch (dtype) {
    case 'F32': return bytesOf(floats());
    case 'F64': return bytesOf(t.data instanceof Float64Array ? t.data : Float64Array.from(numbers()));
    case 'BF16': return bytesOf(f32ArrayToBf16(floats()));
    case 'F16': return bytesOf(f32ArrayToF16(floats()));
    case 'I64': return bytesOf(t.data instanceof BigInt64Array ? t.data : BigInt64Array.from(numbers(), BigInt));
    case 'I32': return bytesOf(t.data instanceof Int32Array ? t.data : Int32Array.from(numbers()));
    case 'I16': return bytesOf(Int16Array.from(numbers()));
    case 'I8': return bytesOf(Int8Array.from(numbers()));
    case 'U8': return t.data instanceof Uint8Array ? t.data : Uint8Array.from(numbers());
    case 'BOOL': return Uint8Array.from(numbers());
    default: throw new Error(`cannot write a tensor as ${dtype}`);
  }
}
