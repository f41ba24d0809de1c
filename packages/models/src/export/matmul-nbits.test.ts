/**
 * quantizeQ4 read back by a dequantization written here from MatMulNBits' specification, and by onnxruntime's
 * own MatMulNBits kernel.
 */
import test from 'ava';
import { Tensor } from '@lorakit/core';
import { GraphBuilder, disposeKernels, nativeKernel } from '@lorakit/core/native';
import { quantizeQ4 } from './matmul-nbits.ts';

/** w[n, k] = (nibble − 8) · scale[n, block]; nibble 2j low, 2j + 1 high in byte j of the block. */
function dequantize(packed: Tensor, scales: Tensor, k: number): Float64Array {
  const [n, blocks, blob] = packed.shape;
  const codes = packed.data as Uint8Array;
  const out = new Float64Array(n * k);
  for (let row = 0; row < n; row++) {
    for (let col = 0; col < k; col++) {
      const block = Math.floor(col / 32);
      const byte = codes[(row * blocks + block) * blob + Math.floor((col % 32) / 2)];
      const nibble = col % 2 === 0 ? byte & 0x0f : byte >> 4;
      out[row * k + col] = (nibble - 8) * scales.values[row * blocks + block];
    }
  }
  return out;
}

function randomWeight(n: number, k: number): Tensor {
  const values = Float32Array.from({ length: n * k }, (_, i) => Math.sin(i * 12.9898) * 43758.5453 % 1);
  values[3] = 2.5; // a block whose extreme is positive
  values[40] = -3; // and one whose extreme is negative
  return new Tensor(values, [n, k]);
}

test('a 4-bit weight holds every value within half a step (one, past +7 steps), each block\'s extreme exactly, and pads a short last block', (t) => {
  const [n, k] = [6, 70]; // 70 = two blocks of 32 and one of 6
  const weight = randomWeight(n, k);
  const { packed, scales } = quantizeQ4(weight);
  t.deepEqual([packed.shape, scales.shape], [[6, 3, 16], [6, 3]]);
  const restored = dequantize(packed, scales, k);
  for (let i = 0; i < n * k; i++) {
    const scale = scales.values[Math.floor(i / k) * 3 + Math.floor((i % k) / 32)];
    const clamped = weight.values[i] / scale > 7.5; // the codes reach −8 steps on the extreme's side, only +7 on the other
    const bound = clamped ? Math.abs(scale) : Math.abs(scale) / 2;
    t.true(Math.abs(restored[i] - weight.values[i]) <= bound + 1e-6, `element ${i}: ${restored[i]} for ${weight.values[i]}`);
  }
  t.is(restored[3], 2.5);
  t.is(restored[40], -3);
  const padding = (packed.data as Uint8Array).subarray(2 * 16 + 3, 3 * 16); // row 0, block 2: elements 6..31 are padding
  t.true(padding.every((byte) => byte === 0x88));
});

test('onnxruntime\'s MatMulNBits multiplies by exactly the weight this dequantization reads', (t) => {
  const [n, k, rows] = [10, 96, 3];
  const { packed, scales } = quantizeQ4(randomWeight(n, k));
  const g = new GraphBuilder('q4', 'float32');
  g.output(g.namedNode('MatMulNBits', [g.input('x'), g.input('w', 'uint8'), g.input('scales')], ['y'], { K: k, N: n, bits: 4, block_size: 32 }, 'com.microsoft')[0]);
  const x = new Tensor(Float32Array.from({ length: rows * k }, (_, i) => Math.cos(i)), [rows, k]);
  const [y] = nativeKernel('test-matmul-nbits', 'float32', () => g.build()).run([x, packed, scales]);
  disposeKernels((key) => key === 'test-matmul-nbits');
  const w = dequantize(packed, scales, k);
  let worst = 0;
  for (let r = 0; r < rows; r++) {
    for (let o = 0; o < n; o++) {
      let sum = 0;
      for (let i = 0; i < k; i++) sum += x.values[r * k + i] * w[o * k + i];
      worst = Math.max(worst, Math.abs(sum - y.values[r * n + o]));
    }
  }
  t.true(worst <= 1e-4, `MatMulNBits differs by ${worst}`);
});
