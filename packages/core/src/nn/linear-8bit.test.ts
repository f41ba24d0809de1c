/** Linear8bit: LLM.int8's codes, and its int8 products against float64 products with the dequantized weight. */
import test from 'ava';
import { Tensor } from '../tensor.ts';
import { Generator } from '../random.ts';
import { matmul } from '../ops/matmul.ts';
import { Linear8bit } from './linear-8bit.ts';
import { quantizeInt8Rows } from '../quantization/vectorwise-int8.ts';
import { relativeErrorOf } from '../testing/assert.ts';

const rng = new Generator(8);

test('codes are round(w · 127/absmax) of the float16 weight, ties to even, 127/absmax as PyTorch divides, as bitsandbytes computes them', (t) => {
  // 0.126 is 0.12597656 in float16: 127 · that = 15.998 -> 16; -0.5 · 127 = -63.5 -> -64; 0.25 · 127 = 31.75 -> 32
  const { codes, absmax } = quantizeInt8Rows(Float32Array.from([1, -0.5, 0.25, 0.126, 0, 0, 0, 0, -2, 1 / 254, 3 / 254, 1]), 3, 4);
  t.deepEqual([...absmax], [1, 0, 2]);
  t.deepEqual([...codes], [127, -64, 32, 16, 0, 0, 0, 0, -127, 0, 1, 64]); // 127/2 · 1/254 = 0.25 -> 0; · 3/254 = 0.75 -> 1; 63.5 -> 64
  // 127 · float32(1/0.42578125) = 298.27521 (a true quotient would round to 298.27524): 0.212890625 times it is 63.499996
  t.deepEqual([...quantizeInt8Rows(Float32Array.from([0.212890625, 0.42578125]), 1, 2).codes], [63, 127]);
});

/** x·dequant(W)ᵀ in float64. */
function reference(x: Tensor, layer: Linear8bit): Tensor {
  return matmul(x.to('float64'), layer.denseWeight().to('float64'), { transposeB: true });
}

test('the forward is within int8 rounding of the product with the dequantized weight, and so is the input gradient', (t) => {
  const layer = Linear8bit.fromWeight(Tensor.randn([96, 160], { generator: rng }).mul(0.05), null);
  const x = Tensor.randn([64, 160], { generator: rng }).requiresGrad_();
  const y = layer.call(x);
  const forwardError = relativeErrorOf(y.to('float64'), reference(x, layer));
  t.true(forwardError < 0.01 && forwardError > 1e-5, `forward ${forwardError}`); // int8, not float
  const dy = Tensor.randn([64, 96], { generator: rng });
  y.backward(dy);
  const dx = matmul(dy.to('float64'), layer.denseWeight().to('float64'));
  const gradError = relativeErrorOf(x.grad!.to('float64'), dx);
  t.true(gradError < 0.01 && gradError > 1e-5, `input gradient ${gradError}`);
});

test('outlier feature columns are multiplied in float: one huge input spoils the int8 product only without them', (t) => {
  const weight = Tensor.randn([32, 48], { generator: rng }).mul(0.05);
  const x = Tensor.randn([16, 48], { generator: rng });
  (x.data as Float32Array)[5 * 48 + 7] = 500; // one activation far beyond the threshold, in column 7
  const errors = [6, 0].map((threshold) => relativeErrorOf(Linear8bit.fromWeight(weight, null, { threshold }).call(x).to('float64'), reference(x, Linear8bit.fromWeight(weight, null))));
  t.true(errors[0] < 0.01, `with outlier columns ${errors[0]}`);
  t.true(errors[1] > 5 * errors[0], `without ${errors[1]}`);
});

test('an input made only of outlier columns is multiplied exactly in float32; a bias is added', (t) => {
  const bias = Tensor.randn([8], { generator: rng });
  const layer = Linear8bit.fromWeight(Tensor.randn([8, 12], { generator: rng }), bias);
  const x = Tensor.zeros([3, 12]);
  for (const row of [0, 2]) (x.data as Float32Array)[row * 12 + 4] = row === 0 ? -9 : 7.5;
  const y = layer.call(x);
  t.true(relativeErrorOf(y.to('float64'), reference(x, layer).add(bias.to('float64'))) < 1e-6);
});

test('an input with no outliers and a row of zeros gives finite results', (t) => {
  const layer = Linear8bit.fromWeight(Tensor.randn([8, 12], { generator: rng }), null);
  const x = Tensor.randn([3, 12], { generator: rng });
  (x.data as Float32Array).fill(0, 12, 24);
  const y = layer.call(x);
  t.true(y.values.every(Number.isFinite));
  t.deepEqual([...y.values.slice(8, 16)], new Array(8).fill(0));
});

test('the state dict carries bitsandbytes\' keys: weight (int8) and SCB', (t) => {
  const layer = Linear8bit.fromWeight(Tensor.randn([4, 16], { generator: rng }), null);
  t.deepEqual([...layer.stateDict().keys()], ['weight', 'SCB']);
  t.is(layer.stateDict().get('weight')!.dtype, 'int8');
});
