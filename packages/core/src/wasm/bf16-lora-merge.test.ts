/** The fused bf16 LoRA merge: onnxruntime's product and the scalar definition's rounding, bit for bit, and its binary is its text's assembly. */
import test from 'ava';
import { readFile } from 'node:fs/promises';
import { bf16ToF32, f32ToBf16 } from '../dtype.ts';
import { manualSeed } from '../random.ts';
import { Tensor } from '../tensor.ts';
import { matmul } from '../ops/matmul.ts';
import { Bf16LoraMerge, allocate } from './bf16-lora-merge.ts';
import { assemble } from './build-wasm.ts';

const kernel = Bf16LoraMerge.create();

/** One weight's merge as the definition states it, given the float32 product d. */
const scalar = (from: number, d: number, factor: number) => f32ToBf16(Math.fround(bf16ToF32(from) + Math.fround(Math.fround(factor) * d)));
const isNaNBf16 = (bits: number) => (bits & 0x7fff) > 0x7f80;
/** Equal bits, or both NaN: which NaN an operation returns is the hardware's choice, in JavaScript as in WebAssembly. */
const same = (a: number, b: number) => a === b || (isNaNBf16(a) && isNaNBf16(b));
const wrongAt = (to: Uint16Array, expected: Uint16Array) => [...to.keys()].filter((i) => !same(to[i], expected[i]));

test('this machine fuses the multiply-add, so the kernel is available', (t) => {
  t.truthy(kernel);
});

/**
 * One row holding every bf16 bit pattern, then a tail that is not a multiple
 * of 8, at r = 1 with B = [1], so the product is A itself: deltas from tiny
 * to overflowing, NaN and infinite. (A -0 in A would become +0: the sum starts from +0.)
 */
for (const factor of [2, 0.7, -1.25, 1 / 3]) {
  test(`adds factor ${factor.toPrecision(3)}·d to every bf16 pattern with the bits of the scalar definition`, (t) => {
    const n = 65536 + 4467;
    const from = Uint16Array.from({ length: n }, (_, i) => (i < 65536 ? i : (i * 2654435761) >>> 16));
    const specials = [0, 1e-40, -3e-39, 1.5, -2.75, 3e38, -3.4e38, Infinity, -Infinity, NaN];
    const d = Float32Array.from({ length: n }, (_, i) => (i % 3 === 0 ? specials[i % specials.length] : Math.sin(i) * 10 ** ((i % 13) - 8)));
    const to = new Uint16Array(n);
    kernel!.merge(from, to, n, { a: d, b: Float32Array.of(1), r: 1, factor });
    const expected = Uint16Array.from(from, (w, i) => scalar(w, d[i], factor));
    t.deepEqual(wrongAt(to, expected).slice(0, 5).map((i) => [from[i], d[i], to[i], expected[i]]), []);
  });
}

// [rows, in, r]: rows and columns that do not fill the kernel's tiles, ranks from 1 to 64, several blocks of rows
for (const [rows, inp, r] of [[2, 8, 1], [5, 13, 3], [9, 2051, 16], [6, 40, 64], [300, 520, 4], [64, 2048, 16], [7, 2048, 16]]) {
  manualSeed(rows * inp + r);
  const a = Tensor.randn([r, inp]);
  const b = Tensor.randn([rows, r]);
  const from = Uint16Array.from(Tensor.randn([rows * inp]).values, (v) => f32ToBf16(v * 0.02));
  const delta = { a: a.values as Float32Array, b: b.values as Float32Array, r, factor: 0.37 / r };
  const product = matmul(b, a).values;
  const expected = Uint16Array.from(from, (w, i) => scalar(w, product[i], delta.factor));

  test(`merges B·A for [${rows}, ${inp}] at r = ${r} with onnxruntime's float32 product, bit for bit`, (t) => {
    const to = new Uint16Array(rows * inp);
    kernel!.merge(from, to, inp, delta);
    t.deepEqual(wrongAt(to, expected).slice(0, 5), []);
  });

  if (Bf16LoraMerge.fitsInPlace(inp)) {
    test(`merges [${rows}, ${inp}] at r = ${r} in place in its memory with the same bits`, (t) => {
      const at = allocate(kernel!.memory, from.byteLength)!;
      const weights = new Uint16Array(kernel!.memory.buffer, at, from.length);
      weights.set(from);
      kernel!.mergeInPlace(at, at, rows, inp, delta);
      t.deepEqual(wrongAt(new Uint16Array(kernel!.memory.buffer, at, from.length), expected).slice(0, 5), []);
    });
  }
}

test('arrays that do not fit the shape are refused', (t) => {
  t.throws(() => kernel!.merge(new Uint16Array(8), new Uint16Array(8), 4, { a: new Float32Array(8), b: new Float32Array(3), r: 2, factor: 1 }), { message: /B of 3 do not fit \[2, 4\] at r = 2/ });
  t.throws(() => kernel!.mergeInPlace(0, 0, 2, 12, { a: new Float32Array(12), b: new Float32Array(2), r: 1, factor: 1 }), { message: /rows of 12 weights do not merge in place/ });
});

test('the committed binary is the assembly of bf16-lora-merge.wat', async (t) => {
  t.deepEqual(new Uint8Array(await readFile(new URL('./bf16-lora-merge.wasm', import.meta.url))), await assemble('bf16-lora-merge'));
});
