/**
 * A small JSON file users hand us (config.json, adapter_config.json, an
 * index): size-checked before it is read, parsed strictly (duplicate keys,
 * huge integers), and required to be an object. Every error names the file.
 *
 *   const config = await readJsonFile('model/config.json', 'model config');
 */
import { readFile, stat } from 'node:fs/promises';
import { FileFormatError } from './errors.ts';
import { bomProblem, parseStrictJson, type JsonValue } from './strict-json.ts';

const MAX_JSON_BYTES = 10_000_000;

/** `exact`: numbers as their source text (JsonNumber), for a file rewritten with stringifyJson. */
export async function readJsonFile(path: string, what: string, { exact = false }: { exact?: boolean } = {}): Promise<Record<string, JsonValue>> {
  const info = await stat(path).catch(() => null);
  if (info === null) throw new FileFormatError('MissingConfig', path, `no ${what} here`);
  if (info.size > MAX_JSON_BYTES) throw new FileFormatError('ConfigParseError', path, `${info.size} bytes is too large for a ${what}`);
  const text = await readFile(path, 'utf8');
  const bom = bomProblem(text);
  if (bom !== null) throw new FileFormatError('ConfigParseError', path, bom);
  let json: JsonValue;
  try {
    json = parseStrictJson(text, { exact });
  } catch (error) {
    throw new FileFormatError('ConfigParseError', path, `not valid JSON: ${(error as Error).message}`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new FileFormatError('ConfigParseError', path, `a ${what} must be a JSON object`);
  return json as Record<string, JsonValue>;
}
