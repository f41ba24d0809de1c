/**
 * safetensors dtypes: their sizes, and how each becomes a lorakit Tensor.
 * Floats widen to float32 (F64 stays float64); small integers widen to int32.
 */
import { Tensor, type Storage } from '../tensor.ts';
import { bf16ArrayToF32, f16ArrayToF32 } from '../dtype.ts';

export const SAFETENSORS_DTYPES = {
  F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1,
  // known to the format, but lorakit has no math for them:
  U16: 2, U32: 4, U64: 8, F8_E4M3: 1, F8_E5M2: 1,
} as const;

export type SafetensorsDtype = keyof typeof SAFETENSORS_DTYPES;

const COMPUTABLE = new Set<SafetensorsDtype>(['F64', 'F32', 'F16', 'BF16', 'I64', 'I32', 'I16', 'I8', 'U8', 'BOOL']);

export function isSafetensorsDtype(name: string): name is SafetensorsDtype {
  return Object.hasOwn(SAFETENSORS_DTYPES, name);
}

export function isComputable(dtype: SafetensorsDtype): boolean {
  return COMPUTABLE.has(dtype);
}

/** View `bytes` (little-endian, any alignment) as a Tensor, converting as described above. */
export function bytesToTensor(bytes: Uint8Array, dtype: SafetensorsDtype, shape: readonly number[]): Tensor {
  const aligned = (size: number) => (bytes.byteOffset % size === 0 ? bytes : bytes.slice());
  const view = <T>(Ctor: new (b: ArrayBufferLike, o: number, n: number) => T, size: number) => {
    const a = aligned(size);
    return new Ctor(a.buffer, a.byteOffset, a.byteLength / size);
  };
  let data: Storage;
  switch (dtype) {
    case 'F32': data = view(Float32Array, 4).slice(); break;
    case 'F64': data = view(Float64Array, 8).slice(); break;
    case 'BF16': data = bf16ArrayToF32(view(Uint16Array, 2)); break;
    case 'F16': data = f16ArrayToF32(view(Uint16Array, 2)); break;
    case 'I64': data = view(BigInt64Array, 8).slice(); break;
    case 'I32': data = view(Int32Array, 4).slice(); break;
    case 'I16': data = Int32Array.from(view(Int16Array, 2)); break;
    case 'I8': data = Int32Array.from(view(Int8Array, 1)); break;
    case 'U8': data = bytes.slice(); break;
    case 'BOOL': data = Int32Array.from(bytes); break;
    default: throw new Error(`dtype ${dtype} has no tensor conversion in lorakit`);
  }
  return new Tensor(data, shape);
}

