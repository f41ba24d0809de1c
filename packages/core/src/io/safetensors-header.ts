/**
 * The safetensors header, validated before any tensor byte is read.
 *
 *   [8 bytes: N, u64 little-endian][N bytes: UTF-8 JSON][data]
 *   {"__metadata__": {"format": "pt"}, "w": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]}}
 *
 * Stricter than the reference parser (documented in docs/file-formats.md section 1):
 * duplicate names, unknown fields, non-string metadata, gaps, overlaps,
 * trailing bytes and leading whitespace are all errors. Every number is checked exactly (BigInt).
 */
import { FileFormatError, quote } from './errors.ts';
import { JsonNumber, JsonSyntaxError, parseStrictJson, type JsonValue } from './strict-json.ts';
import { SAFETENSORS_DTYPES, isSafetensorsDtype, type SafetensorsDtype } from './dtypes.ts';

export const MAX_HEADER_BYTES = 100_000_000;
export const MAX_TENSORS = 1_000_000;
const MAX_DIM = 2n ** 40n;
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

export interface TensorEntry {
  name: string;
  dtype: SafetensorsDtype;
  shape: number[];
  /** Byte range within the data section. */
  begin: number;
  end: number;
}

export interface SafetensorsHeader {
  tensors: Map<string, TensorEntry>;
  metadata: Map<string, string> | null;
  /** Where the data section starts in the file: 8 + N. */
  dataStart: number;
}

/** N from the first 8 bytes, checked against the file size before anything is allocated. */
export function headerLength(first8: Uint8Array, fileSize: number, file: string): number {
  if (fileSize < 8 || first8.length < 8) throw new FileFormatError('HeaderTooSmall', file, `${fileSize} bytes is too small for a safetensors file (at least 8)`);
  const n = new DataView(first8.buffer, first8.byteOffset, 8).getBigUint64(0, true);
  if (n > BigInt(MAX_HEADER_BYTES)) throw new FileFormatError('HeaderTooLarge', file, `header length ${n} is above the ${MAX_HEADER_BYTES}-byte limit`);
  if (n === 0n) throw new FileFormatError('InvalidHeaderJson', file, 'the header is empty');
  if (8n + n > BigInt(fileSize)) throw new FileFormatError('InvalidHeaderLength', file, `header length ${n} runs past the end of the ${fileSize}-byte file`);
  return Number(n);
}

function decodeJson(bytes: Uint8Array, file: string): JsonValue {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch {
    throw new FileFormatError('InvalidHeaderUtf8', file, 'the header is not valid UTF-8');
  }
  // The format's rule: the header begins with `{`; only trailing whitespace (padding) is allowed around it.
  if (!text.startsWith('{')) throw new FileFormatError('InvalidHeaderJson', file, `the header must begin with "{", not ${quote(text.slice(0, 8))}`);
  try {
    return parseStrictJson(text, { exact: true, maxDepth: 8 });
  } catch (error) {
    if (error instanceof JsonSyntaxError && error.depth === 0 && error.message.startsWith('duplicate key')) {
      throw new FileFormatError('DuplicateTensorName', file, `the header names a tensor twice: ${error.message}`);
    }
    throw new FileFormatError('InvalidHeaderJson', file, `the header is not valid JSON: ${(error as Error).message}`);
  }
}

const isObject = (v: JsonValue): v is { [k: string]: JsonValue } => typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof JsonNumber);

function parseMetadata(value: JsonValue, file: string): Map<string, string> | null {
  if (value === null) return null;
  if (!isObject(value)) throw new FileFormatError('InvalidMetadata', file, '__metadata__ must be an object of strings');
  const metadata = new Map<string, string>();
  for (const [k, v] of Object.entries(value)) {
    if (typeof v !== 'string') throw new FileFormatError('InvalidMetadata', file, `__metadata__ value for ${quote(k)} is not a string`);
    metadata.set(k, v);
  }
  return metadata;
}

/** A non-negative integer that fits `limit`, checked on its exact source text. */
function exactInteger(v: JsonValue, limit: bigint, what: () => string, file: string, code: string): bigint {
  if (!(v instanceof JsonNumber) || !v.isInteger()) throw new FileFormatError(code, file, `${what()} must be a non-negative integer, got ${quote(v)}`);
  const n = v.bigint();
  if (n < 0n || n > limit) throw new FileFormatError(code, file, `${what()} = ${quote(v.text)} is out of range`);
  return n;
}

function parseEntry(name: string, value: JsonValue, file: string): TensorEntry {
  const where = `tensor ${quote(name)}`;
  if (name.includes('\0')) throw new FileFormatError('InvalidTensorName', file, `${where} has a NUL character in its name`);
  if (!isObject(value)) throw new FileFormatError('InvalidTensorInfo', file, `${where} is not an object`);
  const fields = Object.keys(value).sort().join(',');
  if (fields !== 'data_offsets,dtype,shape') {
    throw new FileFormatError('InvalidTensorInfo', file, `${where} must have exactly dtype, shape and data_offsets, has ${quote(fields)}`);
  }
  const dtype = value.dtype;
  if (typeof dtype !== 'string' || !isSafetensorsDtype(dtype)) {
    throw new FileFormatError('UnknownDtype', file, `${where} has dtype ${quote(dtype)}; valid: ${Object.keys(SAFETENSORS_DTYPES).join(', ')}`);
  }
  if (!Array.isArray(value.shape)) throw new FileFormatError('InvalidShape', file, `${where}: shape is not an array`);
  let count = 1n;
  const shape = value.shape.map((d, i) => {
    const dim = exactInteger(d, MAX_DIM, () => `${where}: shape[${i}]`, file, 'InvalidShape');
    count *= dim;
    if (count > MAX_SAFE) throw new FileFormatError('Overflow', file, `${where}: the shape's element count overflows`);
    return Number(dim);
  });
  const offsets = value.data_offsets;
  if (!Array.isArray(offsets) || offsets.length !== 2) throw new FileFormatError('InvalidOffset', file, `${where}: data_offsets must be [begin, end]`);
  const [begin, end] = offsets.map((o, i) => exactInteger(o, MAX_SAFE, () => `${where}: data_offsets[${i}]`, file, 'InvalidOffset'));
  if (end < begin) throw new FileFormatError('InvalidOffset', file, `${where}: data_offsets end ${end} is before begin ${begin}`);
  const expected = count * BigInt(SAFETENSORS_DTYPES[dtype]);
  if (end - begin !== expected) {
    throw new FileFormatError('TensorSizeMismatch', file, `${where}: ${dtype} [${shape}] needs ${expected} bytes, data_offsets give ${end - begin}`);
  }
  return { name, dtype, shape, begin: Number(begin), end: Number(end) };
}

/** The tensors must tile the data section exactly: no gap, no overlap, nothing after. */
function checkCoverage(tensors: TensorEntry[], dataLength: number, file: string): void {
  const sorted = [...tensors].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let covered = 0;
  let previous = '';
  for (const t of sorted) {
    if (t.begin < covered) throw new FileFormatError('InvalidOffset', file, `tensor ${quote(t.name)} overlaps ${quote(previous)}`);
    if (t.begin > covered) throw new FileFormatError('InvalidOffset', file, `a gap of ${t.begin - covered} bytes before tensor ${quote(t.name)}`);
    covered = t.end;
    previous = t.name;
  }
  if (covered < dataLength) throw new FileFormatError('IncompleteBuffer', file, `${dataLength - covered} bytes after the last tensor belong to none`);
  if (covered > dataLength) throw new FileFormatError('IncompleteBuffer', file, `the tensors need ${covered} data bytes, the file has ${dataLength}`);
}

export function parseHeader(bytes: Uint8Array, fileSize: number, file: string): SafetensorsHeader {
  const json = decodeJson(bytes, file);
  if (!isObject(json)) throw new FileFormatError('InvalidHeaderJson', file, 'the header is not a JSON object');
  const names = Object.keys(json);
  if (names.length > MAX_TENSORS) throw new FileFormatError('TooManyTensors', file, `${names.length} tensors is above the limit of ${MAX_TENSORS}`);
  let metadata: Map<string, string> | null = null;
  const tensors = new Map<string, TensorEntry>();
  for (const name of names) {
    if (name === '__metadata__') metadata = parseMetadata(json[name], file);
    else tensors.set(name, parseEntry(name, json[name], file));
  }
  const dataStart = 8 + bytes.length;
  checkCoverage([...tensors.values()], fileSize - dataStart, file);
  return { tensors, metadata, dataStart };
}
