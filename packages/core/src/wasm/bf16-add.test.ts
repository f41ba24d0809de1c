/** The WebAssembly bf16 kernel: the bits of the scalar definition on every bf16 pattern, and its binary is its text's assembly. */
import test from 'ava';
import { readFile } from 'node:fs/promises';
import { bf16ToF32, f32ToBf16 } from '../dtype.ts';
import { addScaledBf16 } from './bf16-add.ts';
import { assemble } from './build-wasm.ts';

const scalar = (from: number, d: number, factor: number) => f32ToBf16(Math.fround(bf16ToF32(from) + Math.fround(Math.fround(factor) * d)));
const isNaNBf16 = (bits: number) => (bits & 0x7fff) > 0x7f80;
/** Equal bits, or both NaN: which NaN an operation returns is the hardware's choice, in JavaScript as in WebAssembly. */
const same = (a: number, b: number) => a === b || (isNaNBf16(a) && isNaNBf16(b));

/** Every bf16 bit pattern, then a tail that is not a multiple of 8, against deltas from tiny to overflowing, NaN and infinite. */
function cases(): { from: Uint16Array; d: Float32Array } {
  const n = 65536 + 4467;
  const from = Uint16Array.from({ length: n }, (_, i) => (i < 65536 ? i : (i * 2654435761) >>> 16));
  const specials = [0, -0, 1e-40, -3e-39, 1.5, -2.75, 3e38, -3.4e38, Infinity, -Infinity, NaN];
  const d = Float32Array.from({ length: n }, (_, i) => (i % 3 === 0 ? specials[i % specials.length] : Math.sin(i) * 10 ** ((i % 13) - 8)));
  return { from, d };
}

for (const factor of [2, 0.7, -1.25, 1 / 3]) {
  test(`adds factor ${factor.toPrecision(3)}·d to every bf16 pattern with the bits of the scalar definition`, (t) => {
    const { from, d } = cases();
    const to = new Uint16Array(from.length);
    addScaledBf16(from, d, factor, to);
    const wrong = [...to.keys()].filter((i) => !same(to[i], scalar(from[i], d[i], factor)));
    t.deepEqual(wrong.slice(0, 5).map((i) => [from[i], d[i], to[i], scalar(from[i], d[i], factor)]), []);
  });
}

test('arrays of different lengths are refused', (t) => {
  t.throws(() => addScaledBf16(new Uint16Array(8), new Float32Array(7), 1, new Uint16Array(8)), { message: /lengths 8, 7 and 8 differ/ });
});

test('the committed binary is the assembly of bf16-add.wat', async (t) => {
  t.deepEqual(new Uint8Array(await readFile(new URL('./bf16-add.wasm', import.meta.url))), await assemble('bf16-add'));
});
