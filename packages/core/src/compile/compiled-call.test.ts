/**
 * Compiled blocks against the same block run op by op: outputs and gradients
 * on new inputs at every call (the trace's data is not reused), dropout masks
 * from the same random numbers, a guard that stops holding, and the reasons a
 * block stays eager.
 * NOTE: serial, because dropout draws from the global generator and the reporter is global.
 */
import test from 'ava';
import { noGrad } from '../autograd.ts';
import { Module } from '../module.ts';
import { Linear } from '../nn/linear.ts';
import { RMSNorm } from '../nn/norm.ts';
import { concat, dropout, gelu, max, permute, rmsNorm, silu, slice, softmax, swiglu } from '../ops/index.ts';
import { defaultGenerator, manualSeed } from '../random.ts';
import { Tensor } from '../tensor.ts';
import { NativeKernel } from '../native/session.ts';
import { relativeErrorOf } from '../testing/index.ts';
import { compiledCall, setCompileReporter } from './compiled-call.ts';
import { traceGuard } from './trace.ts';

/** A block with most kinds of op: native kernels, JavaScript loops, layout, reductions, broadcasting, dropout. */
class Block extends Module {
  norm = new RMSNorm(8);
  up = new Linear(8, 12);
  gate = new Linear(8, 12, { bias: false });
  down = new Linear(12, 8);
  p = 0;

  forward(x: Tensor, bias: Tensor): Tensor {
    const h = this.norm.call(x); // [B, T, 8]
    const mixed = swiglu(this.gate.call(h), this.up.call(h)).add(gelu(this.up.call(h)).mul(0.5)); // [B, T, 12]
    const [left, right] = [slice(mixed, -1, 0, 6), slice(mixed, -1, 6, 12)];
    const turned = permute(concat([silu(right), left.tanh()], -1), [1, 0, 2]); // [T, B, 12]
    const pooled = turned.sub(turned.mean(-1, true)).div(turned.pow(2).sum(-1, true).add(1).sqrt());
    const back = dropout(permute(pooled, [1, 0, 2]), this.p, this.training);
    return x.add(this.down.call(back)).add(bias).mul(rmsNorm(x, null, 1e-5).exp().mean());
  }
}

function randomTensor(shape: number[], seed: number): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  return new Tensor(Float32Array.from({ length: n }, (_, i) => Math.sin(seed * 1.7 + i * 0.61) * 1.5), shape);
}

/** y and the gradients of Σ y·w for x and every trainable parameter, the block run compiled or not. */
function run(block: Block, x: Tensor, bias: Tensor, compiled: boolean) {
  const leaf = x.detach().requiresGrad_();
  const call = (h: Tensor) => block.call(h, bias);
  const y = compiled ? compiledCall(block, leaf, [bias], call) : call(leaf);
  const op = y.gradFn?.op;
  y.mul(randomTensor(y.shape as number[], 99)).sum().backward();
  const parameters = block.namedParameters().filter(([, p]) => p.requiresGrad);
  const grads = [leaf.grad!, ...parameters.map(([, p]) => p.grad!)];
  block.zeroGrad();
  return { y, grads, op };
}

function worstError(a: readonly Tensor[], b: readonly Tensor[]): number {
  return Math.max(...a.map((t, i) => relativeErrorOf(t, b[i])));
}

let runs = 0; // compiled sessions run
const runKernel = NativeKernel.prototype.run;
NativeKernel.prototype.run = function (inputs) {
  if (this.key.startsWith('compiled:')) runs++;
  return runKernel.call(this, inputs);
};

const said: string[] = [];
setCompileReporter((line) => said.push(line));

test.serial('a compiled block gives the outputs and gradients of the eager block, on new inputs at every call', (t) => {
  const block = new Block();
  const ops: Array<string | undefined> = [];
  for (let call = 0; call < 4; call++) {
    const [x, bias] = [randomTensor([2, 5, 8], call), randomTensor([8], call + 10)];
    const eager = run(block, x, bias, false);
    const compiled = run(block, x, bias, true);
    ops.push(compiled.op);
    t.true(relativeErrorOf(compiled.y, eager.y) < 1e-5, `call ${call}: y`);
    t.true(worstError(compiled.grads, eager.grads) < 1e-5, `call ${call}: gradients`);
  }
  t.deepEqual(ops, ['compiled block (tracing)', 'compiled block', 'compiled block', 'compiled block']);
});

test.serial('forwards in flight together keep their own saved values (reused once their backward ran, which runs once)', (t) => {
  const block = new Block();
  const inputs = [0, 1, 2].map((i) => [randomTensor([2, 5, 8], i + 20), randomTensor([8], i + 30)] as const);
  const eager = inputs.map(([x, bias]) => run(block, x, bias, false).grads);
  run(block, ...inputs[0], true); // traced; then a backward hands its saved values to the next forward
  const leaves = inputs.map(([x]) => x.detach().requiresGrad_());
  const ys = inputs.map(([, bias], i) => compiledCall(block, leaves[i], [bias], (h) => block.call(h, bias)));
  for (const i of [2, 0, 1]) {
    const loss = ys[i].mul(randomTensor(ys[i].shape as number[], 99)).sum();
    loss.backward();
    const parameters = block.namedParameters().filter(([, p]) => p.requiresGrad);
    t.true(worstError([leaves[i].grad!, ...parameters.map(([, p]) => p.grad!)], eager[i]) < 1e-5, `forward ${i}`);
    block.zeroGrad();
    t.throws(() => loss.backward(), { message: /already released/ });
  }
});

test.serial('a compiled block draws its dropout masks from the same random numbers as the eager block', (t) => {
  const block = new Block();
  block.p = 0.3;
  for (let call = 0; call < 3; call++) {
    const [x, bias] = [randomTensor([2, 5, 8], call), randomTensor([8], 3)];
    manualSeed(call);
    const eager = run(block, x, bias, false);
    manualSeed(call);
    const compiled = run(block, x, bias, true);
    t.true(relativeErrorOf(compiled.y, eager.y) < 1e-5, `call ${call}`);
    t.true(worstError(compiled.grads, eager.grads) < 1e-5);
  }
});

test.serial('a frozen parameter gets no gradient, and freezing one traces the block again', (t) => {
  const block = new Block();
  const [x, bias] = [randomTensor([2, 5, 8], 1), randomTensor([8], 2)];
  run(block, x, bias, true);
  block.up.weight.requiresGrad = false;
  const eager = run(block, x, bias, false);
  const first = run(block, x, bias, true);
  const second = run(block, x, bias, true);
  t.deepEqual([first.op, second.op], ['compiled block (tracing)', 'compiled block']);
  t.is(second.grads.length, eager.grads.length);
  t.true(worstError(second.grads, eager.grads) < 1e-5);
  t.is(block.up.weight.grad, null);
});

test.serial('without gradients, a block is traced and run as its forward alone', (t) => {
  const block = new Block();
  const [x, bias] = [randomTensor([3, 4, 8], 5), randomTensor([8], 6)];
  const eager = run(block, x, bias, false);
  const forwards = [0, 1].map(() => noGrad(() => compiledCall(block, x, [bias], (h) => block.call(h, bias))));
  runs = 0;
  const y = noGrad(() => compiledCall(block, x, [bias], (h) => block.call(h, bias)));
  t.is(runs, 1);
  for (const f of [...forwards, y]) t.true(relativeErrorOf(f, eager.y) < 1e-5);
});

test.serial('checkpointed, a compiled block keeps no activations and recomputes its forward in the backward graph: the same gradients, masks and random numbers', (t) => {
  const block = new Block();
  block.p = 0.3;
  const [x, bias] = [randomTensor([3, 4, 8], 5), randomTensor([8], 6)];
  manualSeed(2);
  const eager = run(block, x, bias, false);
  const after = defaultGenerator.getState();
  const ops = [0, 1, 2].map(() => {
    manualSeed(2);
    const leaf = x.detach().requiresGrad_();
    const y = compiledCall(block, leaf, [bias], (h) => block.call(h, bias), { checkpointed: true });
    const op = y.gradFn?.op;
    y.mul(randomTensor([3, 4, 8], 99)).sum().backward();
    const grads = [leaf.grad!, ...block.parameters().map((p) => p.grad!)];
    block.zeroGrad();
    t.true(relativeErrorOf(y, eager.y) < 1e-5);
    t.true(worstError(grads, eager.grads) < 1e-5);
    t.deepEqual(defaultGenerator.getState(), after);
    return op;
  });
  t.deepEqual(ops, ['checkpoint', 'compiled block (recomputed)', 'compiled block (recomputed)']);
});

test.serial('a decision on an input\'s values is a guard: when it stops holding, the block is traced again', (t) => {
  const block = new Linear(4, 4);
  const sign = (x: Tensor, flag: Tensor) => {
    const positive = flag.values[0] > 0;
    traceGuard('sign', [flag], ([f]) => f.values[0] > 0 === positive);
    return block.call(x).mul(positive ? 2 : -3);
  };
  const x = randomTensor([2, 4], 1).requiresGrad_();
  const results = [1, 1, -1, -1, 1].map((s) => {
    const flag = Tensor.fromArray([s]);
    const y = compiledCall(block, x, [flag], (h) => sign(h, flag));
    const op = y.gradFn?.op;
    y.sum().backward();
    return { y: y.toArray(), expected: noGrad(() => block.call(x).mul(s > 0 ? 2 : -3)).toArray(), op };
  });
  for (const r of results) t.deepEqual(r.y.map((v) => v.toFixed(5)), r.expected.map((v) => v.toFixed(5)));
  t.deepEqual(results.map((r) => r.op), ['compiled block (tracing)', 'compiled block', 'compiled block (tracing)', 'compiled block', 'compiled block (tracing)']);
});

test.serial('a forward hook, an op with no graph form or a tensor from outside keeps the block eager, said once', (t) => {
  said.length = 0;
  const hooked = new Block();
  hooked.down.registerForwardHook(() => undefined);
  const [x, bias] = [randomTensor([2, 5, 8], 1), randomTensor([8], 2)];
  for (let i = 0; i < 2; i++) t.is(run(hooked, x, bias, true).op, 'mul'); // the eager block's last op
  t.deepEqual(said, ['lorakit: Block runs eagerly, not compiled: a forward hook on down']);

  said.length = 0;
  const linear = new Linear(4, 4);
  const withMax = (h: Tensor) => linear.call(h).add(max(h, -1, true));
  const input = randomTensor([3, 4], 3).requiresGrad_();
  compiledCall(linear, input, [], withMax).sum().backward();
  t.deepEqual(said, ['lorakit: Linear runs eagerly, not compiled: max has no graph form']);

  said.length = 0;
  const other = new Linear(4, 4);
  const outside = softmax(randomTensor([4], 4), -1); // computed before the block, and not given as an input
  compiledCall(other, input, [], (h) => other.call(h).mul(outside)).sum().backward();
  t.is(said.length, 1);
  t.regex(said[0], /Linear runs eagerly, not compiled: mul was given a \[4\] float32 tensor computed outside the traced ops/);
});
