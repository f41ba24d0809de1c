/**
 * Activation checkpointing against the plain block it stands for: the same
 * gradients when only a weight used inside needs them (LoRA behind a frozen
 * embedding), the same dropout masks, the same random numbers drawn, and
 * finite differences.
 * NOTE: serial, because dropout draws from the global generator.
 */
import test from 'ava';
import { isGradEnabled, noGrad, observeGradUse } from './autograd.ts';
import { checkpoint } from './checkpoint.ts';
import { dropout } from './ops/dropout.ts';
import { matmul } from './ops/matmul.ts';
import { Parameter } from './parameter.ts';
import { defaultGenerator, manualSeed } from './random.ts';
import { Tensor } from './tensor.ts';
import { gradcheck } from './testing/index.ts';

const frozenInput = () => Tensor.fromArray([[1, 2, -1], [0.5, -3, 2]]); // requires no grad, like a frozen embedding's output
const weights = () => [
  new Parameter(Tensor.fromArray([[0.5, -1, 0.25, 2], [2, 0.25, -0.5, 1], [1, 1, -1, 0.5]])),
  new Parameter(Tensor.fromArray([[1, 0.5], [-0.5, 1.5], [0.25, -2], [1, 1]])),
];
const block = (w1: Tensor, w2: Tensor) => (x: Tensor) => matmul(dropout(matmul(x, w1).tanh(), 0.5, true), w2);

/** Gradients of Σ out² for the weights, and the generator state after forward and backward. */
function gradients(run: (x: Tensor, w1: Parameter, w2: Parameter) => Tensor) {
  const [w1, w2] = weights();
  manualSeed(11);
  run(frozenInput(), w1, w2).pow(2).sum().backward();
  return { grads: [w1.grad!.toArray(), w2.grad!.toArray()], after: defaultGenerator.getState() };
}

test.serial('a segment whose input is frozen still trains the weights it uses', (t) => {
  const [w1, w2] = weights();
  const x = frozenInput();
  const out = checkpoint((h) => matmul(matmul(h, w1).tanh(), w2), x);
  t.is(out.gradFn?.op, 'checkpoint');
  out.pow(2).sum().backward();
  const [p1, p2] = weights();
  matmul(matmul(x, p1).tanh(), p2).pow(2).sum().backward();
  t.deepEqual([w1.grad!.toArray(), w2.grad!.toArray()], [p1.grad!.toArray(), p2.grad!.toArray()]);
  t.is(x.grad, null);
});

test.serial('the recomputation replays the forward dropout masks and draws the same random numbers', (t) => {
  const plain = gradients((x, w1, w2) => block(w1, w2)(x));
  const checkpointed = gradients((x, w1, w2) => checkpoint(block(w1, w2), x));
  t.deepEqual(checkpointed.grads, plain.grads);
  t.deepEqual(checkpointed.after, plain.after, 'the generator ends where it ends without checkpointing');
});

test.serial('checkpointed dropout gradients match finite differences', (t) => {
  const x = frozenInput().to('float64');
  // Every evaluation reseeds, so the objective is one fixed function; a recomputation with fresh masks would differ from it.
  const { maxError, worst } = gradcheck((w1, w2) => {
    manualSeed(5);
    defaultGenerator.uniform(); // the generator has moved on before the segment
    return checkpoint(block(w1, w2), x);
  }, weights().map((w) => w.detach()));
  t.true(maxError < 1e-6, worst);
});

test.serial('a segment that uses nothing trainable stays off the tape', (t) => {
  const [w1, w2] = weights();
  w1.requiresGrad = w2.requiresGrad = false;
  const out = checkpoint(block(w1, w2), frozenInput());
  t.false(out.requiresGrad);
  t.is(out.gradFn, null);
});

test.serial('a nested segment counts for the outer one', (t) => {
  const [w1, w2] = weights();
  const x = frozenInput();
  const inner = (h: Tensor) => matmul(h, w1).tanh();
  const out = checkpoint((h) => matmul(checkpoint(inner, h), w2.detach()), x);
  t.true(out.requiresGrad);
  out.pow(2).sum().backward();
  const [p1] = weights();
  matmul(matmul(x, p1).tanh(), w2.detach()).pow(2).sum().backward();
  t.deepEqual(w1.grad!.toArray(), p1.grad!.toArray());
});

test.serial('a segment returning its input leaves the input a leaf', (t) => {
  const [w1] = weights();
  const x = frozenInput();
  const out = checkpoint((h) => (w1.sum().item() > 100 ? h.mul(w1.sum()) : h), x);
  t.is(x.gradFn, null);
  t.false(x.requiresGrad);
  t.not(out, x);
});

test.serial('the observer sees only what runs inside it, and under noGrad a segment runs plainly', (t) => {
  const [w1, w2] = weights();
  const observed = observeGradUse(() => noGrad(() => block(w1, w2)(frozenInput())));
  t.true(observed.usedGrad);
  t.false(observeGradUse(() => noGrad(() => frozenInput().mul(2))).usedGrad);
  const out = noGrad(() => checkpoint(block(w1, w2), frozenInput()));
  t.false(out.requiresGrad);
  t.true(isGradEnabled());
});
