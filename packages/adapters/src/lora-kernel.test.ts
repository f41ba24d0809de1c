/** The fused LoRA kernel against finite differences (float64) and against the same math from separate ops. */
import test from 'ava';
import { Generator, Parameter, Tensor } from '@lorakit/core';
import { Linear, Conv1D } from '@lorakit/core/nn';
import { matmul } from '@lorakit/core/ops';
import { gradcheck } from '@lorakit/core/testing';

import { baseOf } from './base-layer.ts';
import { loraLinear } from './lora-kernel.ts';

const rng = new Generator(4);
const randn = (...shape: number[]) => Tensor.randn(shape, { generator: rng, dtype: 'float64' });

function linearBase(bias: boolean) {
  const layer = new Linear(5, 3, { bias });
  layer.weight = new Parameter(randn(3, 5), false);
  if (layer.bias) layer.bias = new Parameter(randn(3), false);
  return baseOf(layer);
}

function conv1dBase() {
  const layer = new Conv1D(5, 3);
  layer.weight = new Parameter(randn(5, 3), false);
  layer.bias = new Parameter(randn(3), false);
  return baseOf(layer);
}

for (const [name, make] of [['Linear with bias', () => linearBase(true)], ['Linear without bias', () => linearBase(false)], ['GPT-2 Conv1D', conv1dBase]] as const) {
  test(`fused LoRA on a ${name}: gradients of x, A and B match finite differences`, (t) => {
    const base = make();
    const { maxError, worst } = gradcheck((x, a, b) => loraLinear(x, x, base, a, b, 0.7), [randn(4, 5), randn(2, 5), randn(3, 2)]);
    t.true(maxError < 1e-6, worst);
  });
}

for (const [name, make] of [['Linear with bias', () => linearBase(true)], ['GPT-2 Conv1D', conv1dBase]] as const) {
  test(`fused LoRA on a ${name} with one row (a decoding step: the low-rank product kept apart from the weight): gradients match finite differences`, (t) => {
    const base = make();
    const { maxError, worst } = gradcheck((x, a, b) => loraLinear(x, x, base, a, b, 0.7), [randn(1, 5), randn(2, 5), randn(3, 2)]);
    t.true(maxError < 1e-6, worst);
  });
}

test('fused LoRA with a separate (dropped-out) LoRA input: both input gradients match finite differences', (t) => {
  const base = linearBase(true);
  const mask = Tensor.fromArray([[1, 0, 2, 2, 0], [2, 2, 0, 1, 1], [0, 1, 1, 1, 2], [1, 1, 1, 0, 0]], 'float64');
  const { maxError, worst } = gradcheck((x, a, b) => loraLinear(x, x.mul(mask), base, a, b, 1.5), [randn(4, 5), randn(2, 5), randn(3, 2)]);
  t.true(maxError < 1e-6, worst);
});

for (const rows of [1, 6]) {
  test(`fused LoRA equals base(x) + s·(x·Aᵀ)·Bᵀ computed with separate ops (${rows} rows: the low-rank term ${rows === 1 ? 'apart' : 'in the weight'})`, (t) => {
    const base = linearBase(true);
    const [x, a, b] = [randn(rows, 5), randn(2, 5), randn(3, 2)];
    const fused = loraLinear(x, x, base, a, b, 2).toArray();
    const layer = base.module as Linear;
    const reference = matmul(x, layer.weight, { transposeB: true }).add(layer.bias!).add(matmul(matmul(x, a, { transposeB: true }), b, { transposeB: true }).mul(2)).toArray();
    t.true(fused.every((v, i) => Math.abs(v - reference[i]) < 1e-12));
  });
}

test('a trainable base bias gets its gradient through the fused kernel', (t) => {
  const layer = new Linear(5, 3);
  layer.weight = new Parameter(randn(3, 5), false);
  layer.bias = new Parameter(randn(3), true);
  const x = randn(4, 5);
  const a = randn(2, 5).requiresGrad_();
  const b = randn(3, 2).requiresGrad_();
  loraLinear(x, x, baseOf(layer), a, b, 1).sum().backward();
  t.deepEqual(layer.bias.grad!.toArray(), [4, 4, 4]);
  t.is(layer.weight.grad, null);
});
