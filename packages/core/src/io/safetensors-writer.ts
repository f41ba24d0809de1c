/**
 * Writing safetensors: header padded with spaces to a multiple of 8 bytes,
 * `{"format":"pt"}` metadata, tensors in name order, written atomically.
 *
 *   await saveSafetensors('adapter_model.safetensors', new Map([['w', tensorRecord(t, 'F32')]]));
 */
import type { Tensor } from '../tensor.ts';
import { SAFETENSORS_DTYPES, type SafetensorsDtype } from './dtypes.ts';
import { tensorToBytes } from './tensor-bytes.ts';
import { writeAll, writeFileAtomic } from './atomic.ts';
import { numel } from '../shape.ts';

export interface TensorRecord {
  dtype: SafetensorsDtype;
  shape: readonly number[];
  bytes: Uint8Array;
}

export function tensorRecord(t: Tensor, dtype: SafetensorsDtype): TensorRecord {
  return { dtype, shape: [...t.shape], bytes: tensorToBytes(t, dtype) };
}

/** The 8-byte length and the padded JSON header for these tensors, in this order. */
export function encodeHeader(records: ReadonlyArray<[string, Omit<TensorRecord, 'bytes'> & { byteLength: number }]>, metadata: Record<string, string>): Uint8Array {
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length > 0) header.__metadata__ = metadata;
  let offset = 0;
  for (const [name, r] of records) {
    if (numel(r.shape) * SAFETENSORS_DTYPES[r.dtype] !== r.byteLength) throw new Error(`safetensors: ${name} has ${r.byteLength} bytes for ${r.dtype} [${r.shape}]`);
    header[name] = { dtype: r.dtype, shape: r.shape, data_offsets: [offset, offset + r.byteLength] };
    offset += r.byteLength;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil(json.length / 8) * 8;
  const out = new Uint8Array(8 + padded).fill(0x20);
  new DataView(out.buffer).setBigUint64(0, BigInt(padded), true);
  out.set(json, 8);
  return out;
}

export async function saveSafetensors(path: string, tensors: ReadonlyMap<string, TensorRecord>, metadata: Record<string, string> = { format: 'pt' }): Promise<void> {
  const ordered = [...tensors].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const header = encodeHeader(ordered.map(([n, r]) => [n, { ...r, byteLength: r.bytes.length }]), metadata);
  await writeFileAtomic(path, (handle) => writeAll(handle, [header, ...ordered.map(([, r]) => r.bytes)]));
}
