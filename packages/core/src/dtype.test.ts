import test from 'ava';
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from './dtype.ts';

test('bf16 rounds to nearest even and widens exactly', (t) => {
  t.is(f32ToBf16(1), 0x3f80);
  t.is(f32ToBf16(1.00390625), 0x3f80); // halfway between 0x3f80 and 0x3f81: ties to even
  t.is(f32ToBf16(1.01171875), 0x3f82); // halfway between 0x3f81 and 0x3f82: ties to even (up)
  t.is(f32ToBf16(1 + 2 ** -8 + 2 ** -23), 0x3f81); // just above halfway
  t.is(bf16ToF32(0x3f81), 1.0078125);
  t.is(bf16ToF32(0xc000), -2);
});

test('bf16 keeps NaN, infinities and signed zero, and overflows to infinity', (t) => {
  t.true(Number.isNaN(bf16ToF32(f32ToBf16(Number.NaN))));
  t.is(f32ToBf16(Infinity), 0x7f80);
  t.is(f32ToBf16(-Infinity), 0xff80);
  t.is(f32ToBf16(-0), 0x8000);
  t.is(f32ToBf16(3.4028234663852886e38), 0x7f80); // max float32 rounds up past bf16's max
});

test('f16 matches IEEE half precision on normals, subnormals and limits', (t) => {
  t.is(f32ToF16(1), 0x3c00);
  t.is(f32ToF16(65504), 0x7bff);
  t.is(f32ToF16(65519.99), 0x7bff);
  t.is(f32ToF16(65520), 0x7c00); // halfway to the next exponent: ties to even = Inf
  t.is(f32ToF16(2 ** -24), 0x0001); // smallest subnormal
  t.is(f32ToF16(2 ** -25), 0x0000); // halfway to zero ties to even
  t.is(f32ToF16(1.5 * 2 ** -25), 0x0001);
  t.is(f32ToF16(2 ** -14), 0x0400); // smallest normal
  t.is(f32ToF16(1 + 2 ** -11), 0x3c00); // tie, even stays
  t.is(f32ToF16(1 + 3 * 2 ** -11), 0x3c02); // tie, odd rounds up
  t.is(f32ToF16(-2), 0xc000);
  t.is(f16ToF32(0x0001), 2 ** -24);
  t.is(f16ToF32(0x3555), 0.333251953125);
  t.is(f16ToF32(0x7c00), Infinity);
  t.true(Number.isNaN(f16ToF32(f32ToF16(Number.NaN))));
});

test('f16 and bf16 round trips are exact for every representable value', (t) => {
  for (let bits = 0; bits < 0x10000; bits++) {
    const exponent = (bits >>> 10) & 0x1f;
    if (exponent === 0x1f && (bits & 0x3ff)) continue; // NaN payloads
    if (f32ToF16(f16ToF32(bits)) !== bits) return t.fail(`f16 0x${bits.toString(16)}`);
    const bfExponent = (bits >>> 7) & 0xff;
    if (bfExponent === 0xff && (bits & 0x7f)) continue;
    if (f32ToBf16(bf16ToF32(bits)) !== bits) return t.fail(`bf16 0x${bits.toString(16)}`);
  }
  t.pass();
});
