/**
 * JSONL datasets: one JSON object per line, each error naming the file and line.
 * Blank lines are skipped; a file with no records is an error, and so is a line
 * that is not valid UTF-8 (never decoded with replacement characters).
 */
import { readFile } from 'node:fs/promises';
import { FileFormatError, parseStrictJson, type JsonValue } from '@lorakit/core/io';

export interface JsonlRecord {
  line: number;
  value: Record<string, JsonValue>;
}

export class DataError extends FileFormatError {
  constructor(file: string, line: number | null, detail: string) {
    super('DataError', line === null ? file : `${file}:${line}`, detail);
  }
}

// NOTE: ignoreBOM keeps a byte-order mark in the text, where JSON parsing names it, as readFile(file, 'utf8') did.
const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** The first line (1-based) holding bytes that are not UTF-8. Splitting at 0x0A is safe: it never occurs inside a UTF-8 sequence. */
function lineOfInvalidUtf8(bytes: Uint8Array): number {
  let start = 0;
  for (let line = 1; ; line++) {
    const end = bytes.indexOf(0x0a, start);
    try {
      UTF8.decode(bytes.subarray(start, end === -1 ? bytes.length : end));
    } catch {
      return line;
    }
    if (end === -1) return line;
    start = end + 1;
  }
}

function decodeUtf8(bytes: Uint8Array, file: string): string {
  try {
    return UTF8.decode(bytes);
  } catch (error) {
    // Anything else (a file too large for one string) is not about its bytes.
    if ((error as NodeJS.ErrnoException).code !== 'ERR_ENCODING_INVALID_ENCODED_DATA') throw new DataError(file, null, (error as Error).message);
    throw new DataError(file, lineOfInvalidUtf8(bytes), 'not valid UTF-8 text; save the file as UTF-8');
  }
}

export async function readJsonl(file: string): Promise<JsonlRecord[]> {
  const bytes = await readFile(file).catch((error: NodeJS.ErrnoException) => {
    throw new DataError(file, null, error.code === 'ENOENT' ? 'no such file' : error.message);
  });
  const text = decodeUtf8(bytes, file);
  const records: JsonlRecord[] = [];
  text.split('\n').forEach((raw, index) => {
    const line = raw.replace(/\r$/, '');
    if (line.trim() === '') return;
    let value: JsonValue;
    try {
      value = parseStrictJson(line);
    } catch (error) {
      throw new DataError(file, index + 1, `invalid JSON: ${(error as Error).message}`);
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new DataError(file, index + 1, 'each line must be a JSON object');
    records.push({ line: index + 1, value: value as Record<string, JsonValue> });
  });
  if (records.length === 0) throw new DataError(file, null, 'the file holds no records');
  return records;
}
