/**
 * JSONL datasets: one JSON object per line, each error naming the file and line.
 * Blank lines are skipped; a file with no records is an error.
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

export async function readJsonl(file: string): Promise<JsonlRecord[]> {
  const text = await readFile(file, 'utf8').catch((error: NodeJS.ErrnoException) => {
    throw new DataError(file, null, error.code === 'ENOENT' ? 'no such file' : error.message);
  });
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
