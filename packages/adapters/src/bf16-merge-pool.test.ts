/** The worker pool behind the bf16 merge: the bits of one float32 merge rounded once, however the rows are split. */
import test from 'ava';
import { Tensor, bf16ArrayToF32, f32ToBf16, manualSeed, matmul, mul, type LowRankDelta } from '@lorakit/core';
import { Bf16MergePool } from './bf16-merge-pool.ts';

// 65,536 columns make blocks of two rows; five rows split over two workers leave one a single-row block.
const [OUT, IN, R] = [5, 1 << 16, 4];

function randomDelta(factor: number): LowRankDelta {
  return { a: Tensor.randn([R, IN]).values as Float32Array, b: mul(Tensor.randn([OUT, R]), 0.01).values as Float32Array, r: R, factor };
}

/** The straightforward merge, in float32 as PyTorch does it: W + (B·A)·s, each product whole, rounded to bf16 element by element. */
function reference(weight: Uint16Array, deltas: LowRankDelta[]): Uint16Array {
  const w = bf16ArrayToF32(weight);
  for (const { a, b, factor } of deltas) {
    const product = matmul(new Tensor(b, [OUT, R]), new Tensor(a, [R, IN])).values as Float32Array;
    for (let i = 0; i < w.length; i++) w[i] += Math.fround(Math.fround(factor) * product[i]);
  }
  return Uint16Array.from(w, f32ToBf16);
}

function randomWeight(pool: Bf16MergePool, slot = 0): Uint8Array {
  const input = pool.input(slot, OUT * IN * 2);
  new Uint16Array(input.buffer, input.byteOffset, OUT * IN).set(Array.from(Tensor.randn([OUT * IN]).values, (v) => f32ToBf16(v * 0.02)));
  return input;
}

const bits = (bytes: Uint8Array) => new Uint16Array(bytes.buffer, bytes.byteOffset, bytes.length / 2);

for (const threads of [1, 2, 3]) {
  test(`${threads} worker(s) merge one and two adapters to the bits of the float32 merge rounded once`, async (t) => {
    manualSeed(threads);
    const pool = new Bf16MergePool({ threads });
    try {
      for (const deltas of [[randomDelta(1.1)], [randomDelta(0.7), randomDelta(-1 / 3)]]) {
        const source = randomWeight(pool);
        const expected = reference(bits(source).slice(), deltas);
        t.deepEqual(bits(await pool.merge(0, source, [OUT, IN], deltas)), expected);
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
    const deltas = [randomDelta(2)];
    const first = await pool.merge(0, randomWeight(pool, 0), [OUT, IN], deltas);
    const kept = bits(first).slice();
    await pool.merge(1, randomWeight(pool, 1), [OUT, IN], deltas);
    const second = await pool.merge(2, randomWeight(pool, 2), [OUT, IN], deltas);
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
  await t.throwsAsync(pool.merge(0, new Uint8Array(new SharedArrayBuffer(8 * 2)), [2, 4], [{ a: new Float32Array(4), b: new Float32Array(2), r: 1, factor: 1 }]), { message: /closed/ });
});
