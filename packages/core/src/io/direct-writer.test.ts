/** Direct writes: the file holds exactly the bytes appended, whatever their sizes and the blocks they cross. */
import test from 'ava';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DirectWriter } from './direct-writer.ts';

test('appends of odd sizes across the 16 MiB staging buffers give the exact bytes and length', async (t) => {
  const path = join(await mkdtemp(join(tmpdir(), 'lorakit-direct-')), 'file.bin');
  const sizes = [8, 4093, 1, 16 * 2 ** 20 - 4102, 3 * 2 ** 20 + 7, 0, 17 * 2 ** 20 + 5, 12345];
  const parts = sizes.map((n, k) => Uint8Array.from({ length: n }, (_, i) => (i * 31 + k * 7) & 255));
  const file = await DirectWriter.create(path);
  for (const part of parts) await file.append(part);
  t.is(file.length, sizes.reduce((a, b) => a + b, 0));
  await file.close();
  const written = await readFile(path);
  t.is(written.length, file.length);
  let offset = 0;
  const mismatches = parts.filter((part) => {
    const same = Buffer.compare(written.subarray(offset, offset + part.length), part) === 0;
    offset += part.length;
    return !same;
  });
  t.is(mismatches.length, 0);
});

test('an existing file is never overwritten', async (t) => {
  const path = join(await mkdtemp(join(tmpdir(), 'lorakit-direct-')), 'file.bin');
  await writeFile(path, 'kept');
  await t.throwsAsync(DirectWriter.create(path), { code: 'EEXIST' });
  t.is(await readFile(path, 'utf8'), 'kept');
});
