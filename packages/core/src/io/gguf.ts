/**
 * GGUF files (version 3), the format of llama.cpp and what is built on it, written from the specification:
 *
 *   "GGUF"  u32 version 3  u64 tensor count  u64 key/value count
 *   key/values   string key, u32 value type, value      (string: u64 length + UTF-8; array: u32 type, u64 count, values)
 *   tensor infos string name, u32 dims, u64 ne[dims] (innermost first), u32 ggml type, u64 offset in the data
 *   padding to the alignment (32), then each tensor's data, padded to the alignment, in the order of the infos
 *
 * Shapes are given here in PyTorch's order ([out, in]) and written reversed, as ggml counts dimensions.
 */
import { closeSync, openSync, writeSync } from 'node:fs';
import { f32ArrayToBf16, f32ArrayToF16 } from '../dtype.ts';
import { bytesOf } from './tensor-bytes.ts';
import type { Tensor } from '../tensor.ts';

export const GGUF_ALIGNMENT = 32;
/** ggml keeps a tensor name in a 64-byte buffer, its terminating NUL included. */
const MAX_NAME_BYTES = 63;

/** A metadata value with the GGUF type it is written as. */
export type GgufValue =
  | { type: 'u32' | 'i32' | 'f32' | 'u64'; value: number }
  | { type: 'bool'; value: boolean }
  | { type: 'string'; value: string }
  | { type: 'u32[]' | 'i32[]' | 'f32[]'; value: readonly number[] }
  | { type: 'string[]'; value: readonly string[] };

const VALUE_TYPES = { u32: 4, i32: 5, f32: 6, bool: 7, string: 8, array: 9, u64: 10 } as const;

/** How a tensor is stored: the ggml type, and its block (elements per block, bytes per block). */
export const GGML_TYPES = {
  F32: { id: 0, block: 1, bytes: 4 },
  F16: { id: 1, block: 1, bytes: 2 },
  Q8_0: { id: 8, block: 32, bytes: 34 },
  BF16: { id: 30, block: 1, bytes: 2 },
} as const;
export type GgmlType = keyof typeof GGML_TYPES;

export interface GgufTensor {
  name: string;
  /** PyTorch's order: [rows, columns] for a matrix. */
  shape: readonly number[];
  type: GgmlType;
  /** The float32 values, made when the tensor is written (one at a time in memory). */
  values: () => Float32Array;
}

class Bytes {
  readonly #parts: Uint8Array[] = [];
  length = 0;

  push(part: Uint8Array): void {
    this.#parts.push(part);
    this.length += part.length;
  }

  u32(v: number): void {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, v, true);
    this.push(b);
  }

  u64(v: number): void {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setBigUint64(0, BigInt(v), true);
    this.push(b);
  }

  string(s: string): void {
    const utf8 = new TextEncoder().encode(s);
    this.u64(utf8.length);
    this.push(utf8);
  }

  scalar(type: 'u32' | 'i32' | 'f32' | 'u64' | 'bool' | 'string', v: number | boolean | string): void {
    if (type === 'string') return this.string(v as string);
    if (type === 'bool') return this.push(Uint8Array.of(v ? 1 : 0));
    if (type === 'u64') return this.u64(v as number);
    const b = new Uint8Array(4);
    const view = new DataView(b.buffer);
    if (type === 'u32') view.setUint32(0, v as number, true);
    else if (type === 'i32') view.setInt32(0, v as number, true);
    else view.setFloat32(0, v as number, true);
    this.push(b);
  }

  concat(): Uint8Array {
    const out = new Uint8Array(this.length);
    let at = 0;
    for (const part of this.#parts) {
      out.set(part, at);
      at += part.length;
    }
    return out;
  }
}

function writeValue(out: Bytes, { type, value }: GgufValue): void {
  if (!type.endsWith('[]')) {
    out.u32(VALUE_TYPES[type as keyof typeof VALUE_TYPES]);
    return out.scalar(type as 'string', value as string);
  }
  const element = type.slice(0, -2) as 'u32' | 'i32' | 'f32' | 'string';
  out.u32(VALUE_TYPES.array);
  out.u32(VALUE_TYPES[element]);
  const values = value as ReadonlyArray<number | string>;
  out.u64(values.length);
  for (const v of values) out.scalar(element, v);
}

/** The bytes of `values` stored as `type`. */
export function ggmlBytes(values: Float32Array, type: GgmlType): Uint8Array {
  switch (type) {
    case 'F32': return bytesOf(values);
    case 'F16': return bytesOf(f32ArrayToF16(values));
    case 'BF16': return bytesOf(f32ArrayToBf16(values));
    case 'Q8_0': return q8_0(values);
  }
}

/** Q8_0, as ggml quantizes it: blocks of 32 as an f16 scale d = max|x| / 127, then 32 int8 codes round(x / d). */
function q8_0(values: Float32Array): Uint8Array {
  const blocks = values.length / 32;
  const out = new Uint8Array(blocks * 34);
  const view = new DataView(out.buffer);
  for (let b = 0; b < blocks; b++) {
    let largest = 0;
    for (let i = 0; i < 32; i++) largest = Math.max(largest, Math.abs(values[b * 32 + i]));
    const d = largest / 127;
    const inverse = d === 0 ? 0 : 1 / d;
    view.setUint16(b * 34, f32ArrayToF16(Float32Array.of(d))[0], true);
    for (let i = 0; i < 32; i++) {
      const x = values[b * 32 + i] * inverse;
      view.setInt8(b * 34 + 2 + i, Math.sign(x) * Math.round(Math.abs(x))); // C's roundf: halves away from zero
    }
  }
  return out;
}

function storedBytes({ shape, type }: GgufTensor): number {
  const { block, bytes } = GGML_TYPES[type];
  const count = shape.reduce((a, b) => a * b, 1);
  return (count / block) * bytes;
}

function checkTensor(t: GgufTensor): void {
  const nameBytes = new TextEncoder().encode(t.name).length;
  if (nameBytes > MAX_NAME_BYTES) throw new Error(`GGUF tensor ${t.name}: its name takes ${nameBytes} bytes, more than ggml's ${MAX_NAME_BYTES}`);
  if (t.shape.length < 1 || t.shape.length > 4) throw new Error(`GGUF tensor ${t.name}: ${t.shape.length} dimensions (ggml holds 1 to 4)`);
  const inner = t.shape[t.shape.length - 1];
  if (inner % GGML_TYPES[t.type].block !== 0) throw new Error(`GGUF tensor ${t.name}: rows of ${inner} do not fill ${t.type}'s blocks of ${GGML_TYPES[t.type].block}`);
}

const padded = (n: number) => Math.ceil(n / GGUF_ALIGNMENT) * GGUF_ALIGNMENT;

/** Write a GGUF file at `path`: the metadata in order, then the tensors, each made and written in turn. */
export function writeGguf(path: string, metadata: ReadonlyArray<readonly [string, GgufValue]>, tensors: readonly GgufTensor[]): void {
  const keys = new Set<string>();
  for (const [key] of metadata) {
    if (key === '' || keys.has(key)) throw new Error(`GGUF metadata: ${key === '' ? 'an empty key' : `the key ${key} twice`}`);
    keys.add(key);
  }
  const names = new Set<string>();
  for (const t of tensors) {
    checkTensor(t);
    if (names.has(t.name)) throw new Error(`GGUF: the tensor ${t.name} twice`);
    names.add(t.name);
  }
  const head = new Bytes();
  head.push(new TextEncoder().encode('GGUF'));
  head.u32(3);
  head.u64(tensors.length);
  head.u64(metadata.length);
  for (const [key, value] of metadata) {
    head.string(key);
    writeValue(head, value);
  }
  let offset = 0;
  for (const t of tensors) {
    head.string(t.name);
    head.u32(t.shape.length);
    for (const d of [...t.shape].reverse()) head.u64(d);
    head.u32(GGML_TYPES[t.type].id);
    head.u64(offset);
    offset += padded(storedBytes(t));
  }
  const fd = openSync(path, 'w');
  try {
    const header = head.concat();
    writeSync(fd, header);
    let at = padded(header.length);
    for (const t of tensors) {
      const bytes = ggmlBytes(t.values(), t.type);
      if (bytes.length !== storedBytes(t)) throw new Error(`GGUF tensor ${t.name}: ${bytes.length} bytes for its shape [${t.shape}] in ${t.type}`);
      writeSync(fd, bytes, 0, bytes.length, at);
      const padding = padded(bytes.length) - bytes.length;
      if (padding > 0) writeSync(fd, new Uint8Array(padding), 0, padding, at + bytes.length);
      at += bytes.length + padding;
    }
  } finally {
    closeSync(fd);
  }
}

/** A tensor's float32 values for a GgufTensor (4-bit and int8 weights are not written). */
export function floatValues(t: Tensor): Float32Array {
  if (t.dtype !== 'float32') throw new Error(`a ${t.dtype} tensor cannot be written to GGUF`);
  return t.values as Float32Array;
}
