/** The worker pool behind the bf16 merge: the bits of one float32 merge rounded once, however the rows are split. */
import test from 'ava';
import { Tensor, manualSeed } from '@lorakit/core';
import { matmul, mul } from '@lorakit/core/ops';
import { bf16ArrayToF32, f32ToBf16 } from '@lorakit/core/io';
import type { LowRankDelta } from '@lorakit/core/wasm';
import { Bf16MergePool } from './bf16-merge-pool.ts';

// [out, in]: rows shared out in tiles of four (in place), with a tail of fewer; rows too narrow to merge in
// place (1004 is not a multiple of 8); 65,536 columns make copied blocks of two rows, leaving a single-row block.
const SHAPES: Array<[number, number]> = [[11, 1000], [13, 1004], [5, 1 << 16]];
const R = 4;

function randomDelta([out, inp]: [number, number], factor: number): LowRankDelta {
  return { a: Tensor.randn([R, inp]).values as Float32Array, b: mul(Tensor.randn([out, R]), 0.01).values as Float32Array, r: R, factor };
}

/** The straightforward merge, in float32 as PyTorch does it: W + (B·A)·s, each product whole, rounded to bf16 element by element. */
function reference(weight: Uint16Array, [out, inp]: [number, number], deltas: LowRankDelta[]): Uint16Array {
  const w = bf16ArrayToF32(weight);
  for (const { a, b, factor } of deltas) {
    const product = matmul(new Tensor(b, [out, R]), new Tensor(a, [R, inp])).values as Float32Array;
    for (let i = 0; i < w.length; i++) w[i] += Math.fround(Math.fround(factor) * product[i]);
  }
  return Uint16Array.from(w, f32ToBf16);
}

function randomWeight(pool: Bf16MergePool, [out, inp]: [number, number], slot = 0): Uint8Array {
  const input = pool.input(slot, out * inp * 2);
  new Uint16Array(input.buffer, input.byteOffset, out * inp).set(Array.from(Tensor.randn([out * inp]).values, (v) => f32ToBf16(v * 0.02)));
  return input;
}

const bits = (bytes: Uint8Array) => new Uint16Array(bytes.buffer, bytes.byteOffset, bytes.length / 2);

for (const threads of [1, 2, 3]) {
  test(`${threads} worker(s) merge one and two adapters to the bits of the float32 merge rounded once`, async (t) => {
    manualSeed(threads);
    const pool = new Bf16MergePool({ threads });
    try {
      for (const shape of SHAPES) {
        for (const deltas of [[randomDelta(shape, 1.1)], [randomDelta(shape, 0.7), randomDelta(shape, -1 / 3)]]) {
          const expected = reference(bits(randomWeight(pool, shape)).slice(), shape, deltas);
          t.deepEqual(bits(await pool.merge(0, shape, deltas)), expected, `[${shape}], ${deltas.length} adapter(s)`);
        }
      }
    } finally {
      await pool.close();
    }
  });
}

test('a merged weight stays intact while the next slots are merged', async (t) => {
  manualSeed(7);
  const pool = new Bf16MergePool({ threads: 2, slots: 3 });
  try {
    const shape = SHAPES[0];
    const deltas = [randomDelta(shape, 2)];
    randomWeight(pool, shape, 0);
    const first = await pool.merge(0, shape, deltas);
    const kept = bits(first).slice();
    randomWeight(pool, shape, 1);
    await pool.merge(1, shape, deltas);
    randomWeight(pool, shape, 2);
    const second = await pool.merge(2, shape, deltas);
    t.deepEqual(bits(first), kept);
    t.notDeepEqual(bits(second), kept);
  } finally {
    await pool.close();
  }
});

test('a merge after the pool has stopped fails at once instead of waiting for a worker', async (t) => {
  const pool = new Bf16MergePool({ threads: 2 });
  pool.start();
  await pool.close();
  pool.input(0, 8 * 2);
  await t.throwsAsync(pool.merge(0, [2, 4], [{ a: new Float32Array(4), b: new Float32Array(2), r: 1, factor: 1 }]), { message: /closed/ });
});
