import test from 'ava';
import { Tensor } from './tensor.ts';
import * as init from './init.ts';
import { Linear } from './nn/linear.ts';
import { Embedding } from './nn/embedding.ts';
import { manualSeed } from './random.ts';

function stats(t: Tensor) {
  const v = t.toArray();
  const mean = v.reduce((a, b) => a + b, 0) / v.length;
  const variance = v.reduce((a, b) => a + (b - mean) ** 2, 0) / v.length;
  return { mean, std: Math.sqrt(variance), min: v.reduce((a, b) => Math.min(a, b)), max: v.reduce((a, b) => Math.max(a, b)) };
}

test('fans follow PyTorch: fan_in = shape[1]·receptive, fan_out = shape[0]·receptive', (t) => {
  t.deepEqual(init.fans(Tensor.zeros([8, 3, 2, 2])), { fanIn: 12, fanOut: 32 });
  t.throws(() => init.fans(Tensor.zeros([5])), { message: /at least 2 dimensions/ });
});

test('Linear initialises as PyTorch: weight and bias in ±1/sqrt(in_features)', (t) => {
  manualSeed(0);
  const layer = new Linear(400, 300);
  const bound = 1 / Math.sqrt(400);
  const w = stats(layer.weight);
  t.deepEqual(layer.weight.shape, [300, 400]);
  t.true(w.min >= -bound && w.max < bound);
  t.true(Math.abs(w.std - bound / Math.sqrt(3)) < 0.002);
  const b = stats(layer.bias!);
  t.true(b.min >= -bound && b.max < bound);
});

test('kaiming, xavier and normal inits have the standard deviations PyTorch gives', (t) => {
  manualSeed(1);
  const w = Tensor.zeros([256, 512]);
  t.true(Math.abs(stats(init.kaimingNormal_(w, { nonlinearity: 'relu' })).std - Math.sqrt(2 / 512)) < 0.001);
  t.true(Math.abs(stats(init.kaimingNormal_(w, { mode: 'fan_out', nonlinearity: 'relu' })).std - Math.sqrt(2 / 256)) < 0.001);
  t.true(Math.abs(stats(init.xavierUniform_(w)).max - Math.sqrt(6 / 768)) < 0.001);
  t.true(Math.abs(stats(init.xavierNormal_(w, 2)).std - 2 * Math.sqrt(2 / 768)) < 0.001);
  const n = stats(init.normal_(w, 3, 0.5));
  t.true(Math.abs(n.mean - 3) < 0.01 && Math.abs(n.std - 0.5) < 0.01);
  t.is(stats(new Embedding(1000, 64).weight).std.toFixed(1), '1.0');
});

test('truncNormal_ stays within its absolute bounds', (t) => {
  const s = stats(init.truncNormal_(Tensor.zeros([10000]), 0, 1, -0.5, 1));
  t.true(s.min >= -0.5 && s.max <= 1);
});

test('constant inits fill every element', (t) => {
  t.deepEqual(init.ones_(Tensor.zeros([3])).toArray(), [1, 1, 1]);
  t.deepEqual(init.constant_(Tensor.zeros([2]), 0.5).toArray(), [0.5, 0.5]);
  t.deepEqual(init.zeros_(Tensor.ones([2])).toArray(), [0, 0]);
});
