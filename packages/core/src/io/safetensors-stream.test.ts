/** Writing a safetensors file tensor by tensor, some of them in pieces read from another file. */
import test from 'ava';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SafetensorsFile } from './safetensors-reader.ts';
import { SafetensorsStream } from './safetensors-stream.ts';
import { saveSafetensors, tensorRecord } from './safetensors-writer.ts';
import { Tensor } from '../tensor.ts';

const dir = await mkdtemp(join(tmpdir(), 'lorakit-stream-'));
const records = new Map([
  ['a', tensorRecord(Tensor.fromArray(Array.from({ length: 15 }, (_, i) => i / 7 - 1)).reshape([3, 5]), 'F32')],
  ['b', tensorRecord(Tensor.fromArray([1, -2.5, 3e-3, 7, 0, 9, -1]), 'BF16')],
]);
const planned = [...records].map(([name, { dtype, shape }]) => ({ name, dtype, shape }));

async function* concat(...pieces: Uint8Array[]): AsyncGenerator<Uint8Array> {
  yield* pieces;
}

test('tensors copied in pieces make the file the writer makes from them whole', async (t) => {
  const source = join(dir, 'source.safetensors');
  await saveSafetensors(source, records);
  const file = await SafetensorsFile.open(source);
  const pieceLengths: number[] = [];
  async function* counted(pieces: AsyncIterable<Uint8Array>) {
    for await (const piece of pieces) {
      pieceLengths.push(piece.length);
      yield piece;
    }
  }
  const copy = join(dir, 'copy.safetensors');
  const stream = await SafetensorsStream.create(copy, planned);
  await stream.write('a', counted(file.readChunks('a', 16))); // 60 bytes: 16, 16, 16, 12
  await stream.write('b', await file.readBytes('b'));
  await stream.close();
  await file.close();
  t.deepEqual(pieceLengths, [16, 16, 16, 12]);
  t.deepEqual(await readFile(copy), await readFile(source));
});

test('pieces that add up to more or fewer bytes than planned are refused, naming the file and the tensor', async (t) => {
  for (const [label, pieces, got] of [['more', concat(new Uint8Array(40), new Uint8Array(40)), 'more than 60'], ['fewer', concat(new Uint8Array(40)), '40']] as const) {
    const path = join(dir, `${label}.safetensors`);
    const stream = await SafetensorsStream.create(path, planned);
    await t.throwsAsync(stream.write('a', pieces), { message: `${path}: expected a (60 bytes), got a (${got} bytes)` });
  }
});
