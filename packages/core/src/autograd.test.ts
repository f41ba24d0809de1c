import test from 'ava';
import { noGrad, record } from './autograd.ts';
import { Tensor } from './tensor.ts';
import { Parameter } from './parameter.ts';
import { matmul } from './ops/matmul.ts';
import { checkpoint } from './checkpoint.ts';

test('a frozen input never has its gradient computed', (t) => {
  const x = Tensor.fromArray([1, 2]).requiresGrad_();
  const frozen = new Parameter(Tensor.fromArray([3, 4]), false);
  const out = record('probe', x.mul(frozen).detach(), [x, frozen], (g) => [
    () => g.mul(frozen),
    () => { throw new Error('the frozen side was computed'); },
  ]);
  out.sum().backward();
  t.deepEqual(x.grad!.toArray(), [3, 4]);
  t.is(frozen.grad, null);
});

test('gradients accumulate across uses and across backward calls', (t) => {
  const w = Tensor.fromArray([[1, 2], [3, 4]]).requiresGrad_();
  const x = Tensor.fromArray([[1, 1]]);
  matmul(x, w).add(matmul(x, w)).sum().backward();
  t.deepEqual(w.grad!.toArray(), [2, 2, 2, 2]);
  matmul(x, w).sum().backward();
  t.deepEqual(w.grad!.toArray(), [3, 3, 3, 3]);
});

test('noGrad records nothing', (t) => {
  const w = Tensor.fromArray([1]).requiresGrad_();
  const y = noGrad(() => w.mul(2));
  t.false(y.requiresGrad);
  t.is(y.gradFn, null);
});

test('the tape is released after backward, and a second backward says so', (t) => {
  const w = Tensor.fromArray([1, 2]).requiresGrad_();
  const loss = w.mul(w).sum();
  loss.backward();
  t.throws(() => loss.backward(), { message: /already released/ });
});

test('backward of a non-scalar needs a gradient, and gradient shapes are asserted', (t) => {
  const w = Tensor.fromArray([1, 2]).requiresGrad_();
  t.throws(() => w.mul(2).backward(), { message: /non-scalar/ });
  const bad = record('bad', Tensor.fromArray([0]), [w], () => [() => Tensor.zeros([3])]);
  t.throws(() => bad.sum().backward(), { message: /backward of bad: gradient \[3\] for input 0 of shape \[2\]/ });
});

test('a checkpointed block gives the same gradients as the plain one', (t) => {
  const w1 = new Parameter(Tensor.fromArray([[0.5, -1], [2, 0.25]]));
  const w2 = new Parameter(Tensor.fromArray([[1, 0.5], [-0.5, 1.5]]));
  const block = (x: Tensor) => matmul(matmul(x, w1).tanh(), w2);
  const x = Tensor.fromArray([[1, 2], [3, -1]]).requiresGrad_();
  block(x).pow(2).sum().backward();
  const plain = [x.grad!.toArray(), w1.grad!.toArray(), w2.grad!.toArray()];
  x.grad = w1.grad = w2.grad = null;
  const out = checkpoint(block, x);
  t.is(out.gradFn?.op, 'checkpoint');
  out.pow(2).sum().backward();
  t.deepEqual([x.grad!.toArray(), w1.grad!.toArray(), w2.grad!.toArray()], plain);
});
