/**
 * A folder of weights as transformers' save_pretrained writes it: one
 * `model.safetensors`, or shards listed by `model.safetensors.index.json`.
 *
 *   const ckpt = await Checkpoint.open('models/tiny-code-llama');
 *   for (const name of ckpt.names()) ... await ckpt.read(name) ...
 *
 * The index is untrusted: every shard name must be a plain `.safetensors`
 * file inside the folder, every listed tensor must be in its shard, and every
 * shard tensor must be listed. Nothing is read before all of that holds.
 */
import { readFile, readdir, realpath, stat } from 'node:fs/promises';
import { join, sep } from 'node:path';
import type { Tensor } from '../tensor.ts';
import { FileFormatError, quote } from './errors.ts';
import { parseStrictJson, type JsonValue } from './strict-json.ts';
import { SafetensorsFile } from './safetensors-reader.ts';
import type { TensorEntry } from './safetensors-header.ts';

export const SINGLE_FILE = 'model.safetensors';
export const INDEX_FILE = 'model.safetensors.index.json';
const MAX_INDEX_BYTES = 50_000_000;
const PICKLE_FILES = /\.(bin|pt|pth|ckpt|pkl)$/;

/** A shard name from an index: a plain .safetensors file name, nothing that leaves the folder. */
function checkShardName(name: string, index: string): void {
  const unsafe = name === '' || name.includes('/') || name.includes('\\') || name.includes('\0') || name === '.' || name === '..' || name.startsWith('..');
  if (unsafe) throw new FileFormatError('UnsafeShardPath', index, `weight_map points to ${quote(name)}, which is not a file inside the model folder`);
  if (!name.endsWith('.safetensors')) throw new FileFormatError('UnsafeShardPath', index, `weight_map points to ${quote(name)}, which is not a .safetensors file`);
}

async function readIndex(path: string): Promise<{ weightMap: Map<string, string>; totalSize: number | null }> {
  const info = await stat(path);
  if (info.size > MAX_INDEX_BYTES) throw new FileFormatError('IndexTooLarge', path, `${info.size} bytes is above the ${MAX_INDEX_BYTES}-byte limit`);
  let json: JsonValue;
  try {
    json = parseStrictJson(await readFile(path, 'utf8'));
  } catch (error) {
    throw new FileFormatError('InvalidIndex', path, `not valid JSON: ${(error as Error).message}`);
  }
  const isObject = (v: JsonValue): v is Record<string, JsonValue> => typeof v === 'object' && v !== null && !Array.isArray(v);
  if (!isObject(json) || !isObject(json.weight_map ?? null)) throw new FileFormatError('InvalidIndex', path, 'no "weight_map" object');
  const weightMap = new Map<string, string>();
  for (const [tensor, shard] of Object.entries(json.weight_map as Record<string, JsonValue>)) {
    if (typeof shard !== 'string') throw new FileFormatError('InvalidIndex', path, `weight_map value for ${quote(tensor)} is not a string`);
    checkShardName(shard, path);
    weightMap.set(tensor, shard);
  }
  const metadata = json.metadata;
  const totalSize = isObject(metadata ?? null) && typeof (metadata as Record<string, JsonValue>).total_size === 'number' ? ((metadata as Record<string, JsonValue>).total_size as number) : null;
  return { weightMap, totalSize };
}

export class Checkpoint {
  /** Things worth telling the user that are not errors (stale files, a size that does not add up). */
  readonly warnings: string[] = [];

  private constructor(readonly dir: string, readonly files: Map<string, SafetensorsFile>, readonly located: Map<string, SafetensorsFile>) {}

  static async open(dir: string): Promise<Checkpoint> {
    const entries = await readdir(dir).catch((error: NodeJS.ErrnoException) => {
      throw new FileFormatError(error.code === 'ENOENT' ? 'MissingModel' : 'UnreadableModel', dir, error.code === 'ENOENT' ? 'no such folder' : error.message);
    });
    if (entries.includes(INDEX_FILE)) return Checkpoint.#openSharded(dir, entries);
    if (entries.includes(SINGLE_FILE)) {
      const file = await SafetensorsFile.open(join(dir, SINGLE_FILE));
      return new Checkpoint(dir, new Map([[SINGLE_FILE, file]]), new Map(file.names().map((n) => [n, file])));
    }
    const pickles = entries.filter((e) => PICKLE_FILES.test(e));
    if (pickles.length > 0) {
      throw new FileFormatError('PickleNotSupported', dir, `only pickle weights here (${pickles.join(', ')}); lorakit never runs pickles. Convert them to safetensors first (for example with transformers: model.save_pretrained(dir, safe_serialization=True))`);
    }
    throw new FileFormatError('MissingWeights', dir, `neither ${SINGLE_FILE} nor ${INDEX_FILE} here`);
  }

  static async #openSharded(dir: string, entries: string[]): Promise<Checkpoint> {
    const indexPath = join(dir, INDEX_FILE);
    const { weightMap, totalSize } = await readIndex(indexPath);
    const shardNames = [...new Set(weightMap.values())];
    const missing = shardNames.filter((s) => !entries.includes(s));
    if (missing.length > 0) throw new FileFormatError('MissingShard', indexPath, `shards listed but not in the folder: ${missing.map((m) => quote(m)).join(', ')}`);
    const root = await realpath(dir);
    const files = new Map<string, SafetensorsFile>();
    try {
      for (const shard of shardNames) {
        const real = await realpath(join(dir, shard));
        if (!real.startsWith(root + sep) && !(await isHubBlob(real, root))) {
          throw new FileFormatError('UnsafeShardPath', indexPath, `shard ${quote(shard)} resolves outside the model folder`);
        }
        files.set(shard, await SafetensorsFile.open(join(dir, shard)));
      }
      const checkpoint = new Checkpoint(dir, files, locateTensors(weightMap, files, indexPath));
      checkpoint.#noteStaleFiles(entries, shardNames, totalSize);
      return checkpoint;
    } catch (error) {
      await Promise.all([...files.values()].map((f) => f.close()));
      throw error;
    }
  }

  #noteStaleFiles(entries: string[], shards: string[], totalSize: number | null): void {
    if (entries.includes(SINGLE_FILE)) this.warnings.push(`${this.dir}: both ${INDEX_FILE} and ${SINGLE_FILE} exist; the index wins`);
    const stale = entries.filter((e) => e.endsWith('.safetensors') && e !== SINGLE_FILE && !shards.includes(e));
    if (stale.length > 0) this.warnings.push(`${this.dir}: shards not in the index are ignored: ${stale.join(', ')}`);
    const bytes = [...this.located.values()].length === 0 ? 0 : [...this.located].reduce((n, [name, f]) => n + (f.entry(name).end - f.entry(name).begin), 0);
    if (totalSize !== null && totalSize !== bytes) this.warnings.push(`${this.dir}: metadata.total_size says ${totalSize} bytes, the shards hold ${bytes}`);
  }

  names(): string[] {
    return [...this.located.keys()];
  }

  has(name: string): boolean {
    return this.located.has(name);
  }

  #file(name: string): SafetensorsFile {
    const file = this.located.get(name);
    if (file === undefined) throw new FileFormatError('MissingTensor', this.dir, `no tensor ${quote(name)}`);
    return file;
  }

  entry(name: string): TensorEntry {
    return this.#file(name).entry(name);
  }

  read(name: string): Promise<Tensor> {
    return this.#file(name).read(name);
  }

  readBytes(name: string, into?: Uint8Array): Promise<Uint8Array> {
    return this.#file(name).readBytes(name, into);
  }

  /** The stored bytes in pieces, each valid until the next (SafetensorsFile.readChunks). */
  readChunks(name: string, chunkBytes?: number): AsyncGenerator<Uint8Array> {
    return this.#file(name).readChunks(name, chunkBytes);
  }

  async close(): Promise<void> {
    await Promise.all([...this.files.values()].map((f) => f.close()));
  }
}

/** A shard may be a symlink into the Hugging Face cache's blobs folder (…/snapshots/<rev>/ -> …/blobs/). */
async function isHubBlob(real: string, root: string): Promise<boolean> {
  const snapshots = `${sep}snapshots${sep}`;
  const at = root.lastIndexOf(snapshots);
  if (at < 0) return false;
  const blobs = root.slice(0, at) + `${sep}blobs${sep}`;
  return real.startsWith(blobs) && (await stat(real)).isFile();
}

/** Every index entry in its shard, every shard tensor in the index, no tensor in two shards. */
function locateTensors(weightMap: Map<string, string>, files: Map<string, SafetensorsFile>, indexPath: string): Map<string, SafetensorsFile> {
  const located = new Map<string, SafetensorsFile>();
  for (const [tensor, shard] of weightMap) {
    const file = files.get(shard)!;
    if (!file.has(tensor)) throw new FileFormatError('MissingTensor', indexPath, `${quote(tensor)} is listed in ${quote(shard)}, which does not hold it`);
    located.set(tensor, file);
  }
  for (const [shard, file] of files) {
    for (const tensor of file.names()) {
      const listed = weightMap.get(tensor);
      if (listed === undefined) throw new FileFormatError('UnlistedTensor', indexPath, `shard ${quote(shard)} holds ${quote(tensor)}, which the index does not list`);
      if (listed !== shard) throw new FileFormatError('DuplicateTensorName', indexPath, `${quote(tensor)} is in both ${quote(shard)} and ${quote(listed)}`);
    }
  }
  return located;
}
