import test from 'ava';
import { Tensor } from '../tensor.ts';
import { Generator } from '../random.ts';
import { gradcheck } from '../testing/gradcheck.ts';
import { maxAbsDiff } from '../testing/assert.ts';
import { rotaryAttention } from './rotary-attention.ts';
import { causalBlocks } from './causal-blocks.ts';
import { attentionBias, repeatKv, scaledDotProductAttention } from './attention.ts';
import { applyRotary, rotaryTables } from './rope.ts';
import { concat, slice } from './layout.ts';
import { matmul } from './matmul.ts';
import { softmax } from './softmax.ts';
import { tanh } from './unary.ts';
import { noGrad, observeGradUse } from '../autograd.ts';
import { Parameter } from '../parameter.ts';

const rng = new Generator(5);
const randn = (...shape: number[]) => Tensor.randn(shape, { generator: rng, dtype: 'float64' });
const dims = { heads: 4, kvHeads: 2, headDim: 4 };

function tables(positions: number[]) {
  const { cos, sin } = rotaryTables(positions, Float64Array.from([1, 0.1]));
  const as4d = (v: Float32Array) => new Tensor(Float64Array.from(v), [1, 1, positions.length, 4]);
  return { cos: as4d(cos), sin: as4d(sin) };
}

/** The same attention from separately tested ops: rope, repeatKv, scaledDotProductAttention. */
function unfused(q: Tensor, k: Tensor, v: Tensor, pastK: Tensor | null, pastV: Tensor | null, bias: Tensor, positions: number[]) {
  const { cos, sin } = tables(positions);
  const [b, t] = q.shape;
  const split = (x: Tensor, n: number) => x.reshape([b, t, n, 4]).transpose(1, 2);
  const qh = applyRotary(split(q, 4), cos, sin);
  let kh = applyRotary(split(k, 2), cos, sin);
  let vh = split(v, 2);
  if (pastK && pastV) {
    kh = concat([pastK, kh], 2);
    vh = concat([pastV, vh], 2);
  }
  const o = scaledDotProductAttention(qh, repeatKv(kh, 2), repeatKv(vh, 2), { bias });
  return { out: o.transpose(1, 2).reshape([b, t, 16]), key: kh, value: vh };
}

test('fused rotary attention equals rope + repeatKv + attention, with and without a cache', (t) => {
  const q = randn(2, 3, 16), k = randn(2, 3, 8), v = randn(2, 3, 8);
  const bias = attentionBias({ batch: 2, queryLength: 3, keyLength: 3, causal: true, dtype: 'float64' });
  const fused = rotaryAttention(q, k, v, { ...dims, ...tables([0, 1, 2]), bias });
  const reference = unfused(q, k, v, null, null, bias, [0, 1, 2]);
  t.true(maxAbsDiff(fused.out.values, reference.out.values) < 1e-12);
  t.true(maxAbsDiff(fused.key.values, reference.key.values) < 1e-12);

  const q2 = randn(2, 1, 16), k2 = randn(2, 1, 8), v2 = randn(2, 1, 8);
  const bias2 = attentionBias({ batch: 2, queryLength: 1, keyLength: 4, causal: true, dtype: 'float64' });
  const step = rotaryAttention(q2, k2, v2, { ...dims, ...tables([3]), bias: bias2, pastKey: fused.key, pastValue: fused.value });
  const stepReference = unfused(q2, k2, v2, reference.key, reference.value, bias2, [3]);
  t.true(maxAbsDiff(step.out.values, stepReference.out.values) < 1e-12);
  t.deepEqual(step.value.shape, [2, 2, 4, 4]);
});

test('fused rotary attention gradients match finite differences', (t) => {
  const bias = attentionBias({ batch: 1, queryLength: 3, keyLength: 3, causal: true, dtype: 'float64' });
  const { maxError, worst } = gradcheck((q, k, v) => rotaryAttention(q, k, v, { ...dims, ...tables([0, 1, 2]), bias }).out, [randn(1, 3, 16), randn(1, 3, 8), randn(1, 3, 8)]);
  t.true(maxError < 1e-6, worst);
});

test('with a cache, only the new positions get gradients', (t) => {
  const pastK = randn(1, 2, 2, 4), pastV = randn(1, 2, 2, 4);
  const bias = attentionBias({ batch: 1, queryLength: 2, keyLength: 4, causal: true, dtype: 'float64' });
  const fn = (q: Tensor, k: Tensor, v: Tensor) => rotaryAttention(q, k, v, { ...dims, ...tables([2, 3]), bias, pastKey: pastK, pastValue: pastV }).out;
  const { maxError, worst } = gradcheck(fn, [randn(1, 2, 16), randn(1, 2, 8), randn(1, 2, 8)]);
  t.true(maxError < 1e-6, worst);
});

test('shapes that do not fit the heads are an error naming them', (t) => {
  const bias = attentionBias({ batch: 1, queryLength: 3, keyLength: 3, causal: true, dtype: 'float64' });
  t.throws(() => rotaryAttention(randn(1, 3, 12), randn(1, 3, 8), randn(1, 3, 8), { ...dims, ...tables([0, 1, 2]), bias }), {
    message: /rotaryAttention: shapes .* do not fit 4 heads, 2 key\/value heads of 4/,
  });
});

test('large attention recomputes its probabilities in the backward and gets the same gradients', (t) => {
  // 4 heads × 1100² float32 probabilities (19 MB) are above the keep threshold; 300² are below.
  for (const length of [300, 1100]) {
    const q = Tensor.randn([1, length, 16], { generator: rng }), k = Tensor.randn([1, length, 8], { generator: rng }), v = Tensor.randn([1, length, 8], { generator: rng });
    const { cos, sin } = rotaryTables(Array.from({ length }, (_, i) => i), Float64Array.from([1, 0.1]));
    const tables4 = { cos: new Tensor(cos, [1, 1, length, 4]), sin: new Tensor(sin, [1, 1, length, 4]) };
    const bias = attentionBias({ batch: 1, queryLength: length, keyLength: length, causal: true });
    const run = (train: boolean) => {
      const [qq, kk, vv] = [q, k, v].map((x) => x.clone().requiresGrad_(train));
      const { out } = rotaryAttention(qq, kk, vv, { ...dims, ...tables4, bias });
      if (train) out.sum().backward();
      return { out: out.toArray(), grads: [qq, kk, vv].map((x) => x.grad?.toArray()) };
    };
    const trained = run(true);
    t.deepEqual(trained.out, run(false).out);
    const reference = unfusedGradients(q, k, v, tables4, bias);
    trained.grads.forEach((g, i) => t.true(g!.every((x, j) => Math.abs(x - reference[i][j]) < 1e-4 * (1 + Math.abs(reference[i][j]))), `input ${i} at length ${length}`));
  }
});

function unfusedGradients(q: Tensor, k: Tensor, v: Tensor, { cos, sin }: { cos: Tensor; sin: Tensor }, bias: Tensor): number[][] {
  const [qq, kk, vv] = [q, k, v].map((x) => x.clone().requiresGrad_());
  const t = q.shape[1];
  const split = (x: Tensor, n: number) => x.reshape([1, t, n, 4]).transpose(1, 2);
  const o = scaledDotProductAttention(applyRotary(split(qq, 4), cos, sin), repeatKv(applyRotary(split(kk, 2), cos, sin), 2), repeatKv(split(vv, 2), 2), { bias });
  o.sum().backward();
  return [qq, kk, vv].map((x) => x.grad!.toArray());
}

test('a checkpoint observing a no-grad forward sees a trainable q, k or v', (t) => {
  const [q, k, v] = [randn(1, 3, 16), randn(1, 3, 8), randn(1, 3, 8)];
  const bias = attentionBias({ batch: 1, queryLength: 3, keyLength: 3, causal: true, dtype: 'float64' });
  const attend = (q: Tensor, k: Tensor, v: Tensor) => () => noGrad(() => rotaryAttention(q, k, v, { ...dims, ...tables([0, 1, 2]), bias }));
  t.false(observeGradUse(attend(q, k, v)).usedGrad);
  t.true(observeGradUse(attend(q, new Parameter(k), v)).usedGrad);
});

/**
 * Attention written out op by op, for the options the composition above lacks: rope on the first
 * `rotaryDim` dims of each head only (phi3), and scores soft-capped as c·tanh(s/c) (gemma2).
 */
function composed(q: Tensor, k: Tensor, v: Tensor, bias: Tensor, cos: Tensor, sin: Tensor, rotaryDim: number, softcap: number | null) {
  const [b, t] = q.shape;
  const headDim = 4;
  const split = (x: Tensor, n: number) => x.reshape([b, t, n, headDim]).transpose(1, 2);
  const rope = (x: Tensor) => rotaryDim === headDim ? applyRotary(x, cos, sin) : concat([applyRotary(slice(x, 3, 0, rotaryDim), cos, sin), slice(x, 3, rotaryDim, headDim)], 3);
  const qh = rope(split(q, 4));
  const kh = repeatKv(rope(split(k, 2)), 2);
  const raw = matmul(qh, kh.transpose(2, 3)).mul(1 / Math.sqrt(headDim));
  const scores = (softcap === null ? raw : tanh(raw.div(softcap)).mul(softcap)).add(bias);
  return matmul(softmax(scores, -1), repeatKv(split(v, 2), 2)).transpose(1, 2).reshape([b, t, 16]);
}

for (const [rotaryDim, softcap] of [[2, null], [4, 0.7], [2, 0.7]] as const) {
  test(`rotary attention turning ${rotaryDim} of 4 dims, softcap ${softcap}: outputs and gradients equal the op-by-op composition`, (t) => {
    const bias = attentionBias({ batch: 2, queryLength: 3, keyLength: 3, causal: true, paddingMask: new Tensor(Int32Array.of(1, 1, 1, 0, 1, 1), [2, 3]), dtype: 'float64' });
    const positions = [0, 1, 2];
    const { cos: c, sin: s } = rotaryTables(positions, Float64Array.from([0.9, 0.1].slice(0, rotaryDim / 2)));
    const cos = new Tensor(Float64Array.from(c), [1, 1, 3, rotaryDim]), sin = new Tensor(Float64Array.from(s), [1, 1, 3, rotaryDim]);
    const inputs = () => [randn(2, 3, 16), randn(2, 3, 8), randn(2, 3, 8)].map((x) => x.mul(3)); // scores of a few units: the cap bends them
    const [q, k, v] = inputs();
    const fused = (q: Tensor, k: Tensor, v: Tensor) => rotaryAttention(q, k, v, { ...dims, cos, sin, rotaryDim, softcap, bias }).out;
    const reference = composed(q, k, v, bias, cos, sin, rotaryDim, softcap);
    const visibleRows = [0, 1, 2, 4, 5].flatMap((row) => Array.from({ length: 16 }, (_, i) => row * 16 + i)); // row 1's first query sees no key
    const out = fused(q, k, v).values;
    t.true(visibleRows.every((i) => Math.abs(out[i] - reference.values[i]) < 1e-12));
    const { maxError, worst } = gradcheck(fused, inputs());
    t.true(maxError < 1e-6, worst);
    // transformers' eager attention: the query that sees no key averages every value, as the plain softmax does
    const uniform = (q: Tensor, k: Tensor, v: Tensor) => rotaryAttention(q, k, v, { ...dims, cos, sin, rotaryDim, softcap, bias, unseenRows: 'uniform' }).out;
    t.true(maxAbsDiff(uniform(q, k, v).values, reference.values) < 1e-12);
    // its gradient is autograd's through the softmax (finite differences see the scores vanish into the mask's lowest value)
    const grads = (f: (q: Tensor, k: Tensor, v: Tensor) => Tensor) => {
      const leaves = [q, k, v].map((x) => x.clone().requiresGrad_());
      f(leaves[0], leaves[1], leaves[2]).sum().backward();
      return leaves.flatMap((x) => x.grad!.toArray());
    };
    const [fusedGrads, composedGrads] = [grads(uniform), grads((q, k, v) => composed(q, k, v, bias, cos, sin, rotaryDim, softcap))];
    t.true(fusedGrads.every((g, i) => Math.abs(g - composedGrads[i]) < 1e-10));
  });
}

test('a softcap bounds every score: huge queries attend like c·tanh(s/c), not like argmax', (t) => {
  const bias = attentionBias({ batch: 1, queryLength: 3, keyLength: 3, causal: true, dtype: 'float64' });
  const [q, k, v] = [randn(1, 3, 16).mul(100), randn(1, 3, 8), randn(1, 3, 8)];
  const { cos, sin } = tables([0, 1, 2]);
  const capped = rotaryAttention(q, k, v, { ...dims, cos, sin, bias, softcap: 0.5 }).out;
  t.true(maxAbsDiff(capped.values, composed(q, k, v, bias, cos, sin, 4, 0.5).values) < 1e-12);
  t.true(maxAbsDiff(capped.values, rotaryAttention(q, k, v, { ...dims, cos, sin, bias }).out.values) > 0.1);
});

/** Outputs and q, k, v gradients of one attention call (sum of the output as the loss). */
function outputsAndGradients(options: Parameters<typeof rotaryAttention>[3], q: Tensor, k: Tensor, v: Tensor) {
  const leaves = [q, k, v].map((x) => x.clone().requiresGrad_());
  const { out } = rotaryAttention(leaves[0], leaves[1], leaves[2], options);
  out.mul(out).sum().backward();
  return [out.toArray(), ...leaves.map((x) => x.grad!.toArray())];
}

for (const [label, extra] of [
  ['a causal mask', {}],
  ['left padding and a sliding window of 3', { paddingMask: new Tensor(Int32Array.of(0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1), [2, 7]), slidingWindow: 3 }],
] as const) {
  for (const softcap of [null, 0.7]) {
    test(`causal query blocks give the whole square's outputs and gradients (${label}, softcap ${softcap}, 2 of 4 dims turned)`, (t) => {
      const bias = attentionBias({ batch: 2, queryLength: 7, keyLength: 7, causal: true, dtype: 'float64', ...extra });
      const { cos: c, sin: s } = rotaryTables([0, 1, 2, 3, 4, 5, 6], Float64Array.from([0.9]));
      const options = { ...dims, bias, softcap, rotaryDim: 2, cos: new Tensor(Float64Array.from(c), [1, 1, 7, 2]), sin: new Tensor(Float64Array.from(s), [1, 1, 7, 2]) };
      const [q, k, v] = [randn(2, 7, 16), randn(2, 7, 8), randn(2, 7, 8)].map((x) => x.mul(2));
      const whole = outputsAndGradients({ ...options, queryBlocks: 1 }, q, k, v);
      for (const queryBlocks of [2, 3, 7]) {
        t.is(causalBlocks(7, 0, { ...options, queryBlocks }).length, queryBlocks);
        const blocked = outputsAndGradients({ ...options, queryBlocks }, q, k, v);
        blocked.forEach((values, i) => t.true(maxAbsDiff(Float64Array.from(values), Float64Array.from(whole[i])) < 1e-12, `${queryBlocks} blocks, output ${i}`));
      }
      const { maxError, worst } = gradcheck((q, k, v) => rotaryAttention(q, k, v, { ...options, queryBlocks: 3 }).out, [q, k, v]);
      t.true(maxError < 1e-6, worst);
    });
  }
}

test('queries are split in causal blocks of 64 positions or more, at most 8, only for a causal mask and no cache', (t) => {
  const options = (length: number, extra = {}) => ({ ...dims, cos: Tensor.zeros([1]), sin: Tensor.zeros([1]), bias: attentionBias({ batch: 2, queryLength: length, keyLength: length, causal: true, ...extra }) });
  t.deepEqual(causalBlocks(256, 0, options(256)).map((b) => [b.from, b.to, b.keys]), [[0, 64, 64], [64, 128, 128], [128, 192, 192], [192, 256, 256]]);
  t.is(causalBlocks(300, 0, options(300, { paddingMask: new Tensor(new Int32Array(600).fill(1), [2, 300]), slidingWindow: 64 })).length, 4);
  t.is(causalBlocks(127, 0, options(127)).length, 1);
  t.is(causalBlocks(512, 16, options(512)).length, 1); // with a cache
  t.is(causalBlocks(4096, 0, options(4096)).length, 8);
  t.is(causalBlocks(512, 0, { ...options(512), unseenRows: 'uniform' }).length, 1);
  t.is(causalBlocks(512, 0, { ...options(512), bias: attentionBias({ batch: 1, queryLength: 512, keyLength: 512, causal: false }) }).length, 1);
});

test('a mask that lets a query see later keys is computed as the whole square, blocks or not', (t) => {
  const causal = attentionBias({ batch: 1, queryLength: 6, keyLength: 6, causal: true, dtype: 'float64' });
  const bias = causal.clone();
  bias.values[1 * 6 + 4] = 0; // query 1 sees key 4
  const options = { ...dims, ...tables([0, 1, 2, 3, 4, 5]), bias };
  const [q, k, v] = [randn(1, 6, 16), randn(1, 6, 8), randn(1, 6, 8)];
  const whole = outputsAndGradients({ ...options, queryBlocks: 1 }, q, k, v);
  outputsAndGradients({ ...options, queryBlocks: 3 }, q, k, v).forEach((values, i) => t.true(maxAbsDiff(Float64Array.from(values), Float64Array.from(whole[i])) < 1e-12));
  const blockedCausal = outputsAndGradients({ ...options, bias: causal, queryBlocks: 3 }, q, k, v);
  t.true(maxAbsDiff(Float64Array.from(blockedCausal[0]), Float64Array.from(whole[0])) > 1e-3); // the seen key changes query 1's output
});
