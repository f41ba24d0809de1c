/** readJsonFile: the reader of config.json, adapter_config.json and indexes (docs/reliability.md section C). */
import test from 'ava';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readJsonFile } from './json-file.ts';

const fileWith = async (bytes: Uint8Array) => {
  const path = join(await mkdtemp(join(tmpdir(), 'lorakit-json-')), 'config.json');
  await writeFile(path, bytes);
  return path;
};

test('a file that starts with a byte order mark is refused, naming the file and the BOM', async (t) => {
  const bytes = new Uint8Array([0xef, 0xbb, 0xbf, ...new TextEncoder().encode('{"model_type": "llama"}')]);
  const path = await fileWith(bytes);
  const error = await t.throwsAsync(readJsonFile(path, 'model config'));
  t.is(error?.name, 'ConfigParseError');
  t.is(error?.message, `${path}: starts with a byte order mark (BOM); save it as UTF-8 without one`);
  t.deepEqual(new Uint8Array(await readFile(path)), bytes);
});

test('the same file without the byte order mark is read', async (t) => {
  const path = await fileWith(new TextEncoder().encode('{"model_type": "llama"}'));
  t.is((await readJsonFile(path, 'model config')).model_type, 'llama');
});
