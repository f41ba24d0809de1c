/**
 * Every op's backward against central finite differences in float64, on
 * random shapes including broadcasting and size-1 dims.
 */
import test from 'ava';
import { Tensor } from '../tensor.ts';
import { Generator } from '../random.ts';
import { gradcheck } from '../testing/gradcheck.ts';
import { add, div, mul, sub } from './binary.ts';
import { exp, gelu, log, neg, pow, relu, rsqrt, sigmoid, silu, sqrt, tanh } from './unary.ts';
import { max, mean, sum } from './reduce.ts';
import { concat, expand, permute, reshape, slice, split, transpose } from './layout.ts';
import { matmul } from './matmul.ts';
import { logSoftmax, softmax } from './softmax.ts';
import { crossEntropy } from './loss.ts';
import { embedding } from './embedding.ts';
import { layerNorm, rmsNorm } from './norm.ts';
import { applyRotary, rotaryTables } from './rope.ts';
import { attentionBias, repeatKv, scaledDotProductAttention } from './attention.ts';
import { dropout } from './dropout.ts';
import { swiglu } from './swiglu.ts';

const rng = new Generator(11);
const randn = (...shape: number[]) => Tensor.randn(shape, { generator: rng, dtype: 'float64' });
const positive = (...shape: number[]) => Tensor.rand(shape, { low: 0.5, high: 2, generator: rng, dtype: 'float64' });
const TOLERANCE = 1e-6;

function check(name: string, fn: (...xs: Tensor[]) => Tensor, inputs: () => Tensor[]) {
  test(`${name} gradient matches finite differences`, (t) => {
    const { maxError, worst } = gradcheck(fn, inputs());
    t.true(maxError < TOLERANCE, `${name}: ${worst}`);
  });
}

// binary ops, with broadcasting in every direction and size-1 dims
check('add', (a, b) => add(a, b), () => [randn(2, 1, 3), randn(4, 1)]);
check('sub', (a, b) => sub(a, b), () => [randn(3), randn(2, 3)]);
check('mul', (a, b) => mul(a, b), () => [randn(2, 3, 1), randn(1, 4)]);
check('div', (a, b) => div(a, b), () => [randn(2, 3), positive(2, 1)]);
check('mul by a scalar tensor', (a, b) => mul(a, b), () => [randn(3, 2), randn()]);

// unary ops
check('neg', (a) => neg(a), () => [randn(2, 3)]);
check('exp', (a) => exp(a), () => [randn(2, 3)]);
check('log', (a) => log(a), () => [positive(5)]);
check('sqrt', (a) => sqrt(a), () => [positive(5)]);
check('rsqrt', (a) => rsqrt(a), () => [positive(5)]);
check('pow 3', (a) => pow(a, 3), () => [randn(4)]);
check('pow 0.5', (a) => pow(a, 0.5), () => [positive(4)]);
check('tanh', (a) => tanh(a), () => [randn(6)]);
check('sigmoid', (a) => sigmoid(a), () => [randn(6)]);
check('relu', (a) => relu(a), () => [randn(6)]);
check('silu', (a) => silu(a), () => [randn(2, 5)]);
check('gelu exact', (a) => gelu(a), () => [randn(2, 5).mul(2)]);
check('gelu tanh', (a) => gelu(a, 'tanh'), () => [randn(2, 5).mul(2)]);

// reductions
check('sum of everything', (a) => sum(a), () => [randn(2, 3)]);
check('sum over two axes keeping dims', (a) => sum(a, [0, 2], true), () => [randn(2, 3, 4)]);
check('mean over the last axis', (a) => mean(a, -1), () => [randn(3, 1, 4)]);
check('max over an axis', (a) => max(a, 1), () => [randn(2, 5, 3)]);

// layout
check('reshape', (a) => reshape(a, [3, -1]), () => [randn(2, 3, 2)]);
check('expand', (a) => expand(a, [2, 3, 4]), () => [randn(3, 1)]);
check('expand of leading and middle axes', (a) => expand(a, [2, 3, 2, 4]), () => [randn(3, 1, 4)]);
check('transpose', (a) => transpose(a, 0, 2), () => [randn(2, 3, 4)]);
check('permute', (a) => permute(a, [2, 0, 1]), () => [randn(2, 1, 3)]);
check('permute keeping the last axis', (a) => permute(a, [0, 2, 1, 3]), () => [randn(2, 3, 2, 4)]);
check('slice', (a) => slice(a, 1, 1, 3), () => [randn(2, 4, 2)]);
check('concat', (a, b) => concat([a, b], 1), () => [randn(2, 1, 3), randn(2, 2, 3)]);
check('split', (a) => { const [x, y] = split(a, [1, 2], -1); return x.mul(y.sum(-1, true)); }, () => [randn(2, 3)]);

// matmul: transposes and batch broadcasting
check('matmul', (a, b) => matmul(a, b), () => [randn(3, 4), randn(4, 2)]);
check('matmul with transposed A', (a, b) => matmul(a, b, { transposeA: true }), () => [randn(4, 3), randn(4, 2)]);
check('matmul with transposed B', (a, b) => matmul(a, b, { transposeB: true }), () => [randn(3, 4), randn(2, 4)]);
check('matmul with both transposed', (a, b) => matmul(a, b, { transposeA: true, transposeB: true }), () => [randn(2, 4, 3), randn(2, 4)]);
check('batched matmul broadcasting the batch', (a, b) => matmul(a, b), () => [randn(2, 1, 3, 4), randn(3, 4, 2)]);
check('matmul with size-1 dims', (a, b) => matmul(a, b), () => [randn(1, 1, 4), randn(4, 1)]);

// softmax and losses
check('softmax over the last axis', (a) => softmax(a), () => [randn(2, 5)]);
check('softmax over a middle axis', (a) => softmax(a, 1), () => [randn(2, 3, 2)]);
check('logSoftmax', (a) => logSoftmax(a), () => [randn(3, 4)]);
check('crossEntropy with ignored targets', (a) => crossEntropy(a, Tensor.fromArray([2, -100, 0, 4], 'int32')), () => [randn(4, 5)]);

// model building blocks
check('embedding', (w) => embedding(Tensor.fromArray([[1, 0], [1, 3]], 'int64'), w), () => [randn(4, 3)]);
check('rmsNorm', (x, w) => rmsNorm(x, w, 1e-5), () => [randn(2, 3, 4), randn(4)]);
check('rmsNorm without a weight', (x) => rmsNorm(x, null, 1e-5), () => [randn(3, 6)]);
check('layerNorm', (x, w, b) => layerNorm(x, w, b, 1e-5), () => [randn(3, 5), randn(5), randn(5)]);
check('rotary embedding', (x) => {
  const { cos, sin } = rotaryTables([0, 1, 2], Float64Array.from([1, 0.1]));
  const table = (v: Float32Array) => new Tensor(Float64Array.from(v), [1, 1, 3, 4]);
  return applyRotary(x, table(cos), table(sin));
}, () => [randn(2, 2, 3, 4)]);
check('rotary embedding with per-batch positions', (x) => {
  const { cos, sin } = rotaryTables([0, 1, 5, 6], Float64Array.from([1, 0.1, 0.01]));
  const table = (v: Float32Array) => new Tensor(Float64Array.from(v), [2, 1, 2, 6]);
  return applyRotary(x, table(cos), table(sin));
}, () => [randn(2, 3, 2, 6)]);
check('swiglu', (a, b) => swiglu(a, b), () => [randn(3, 5).mul(3), randn(3, 5)]);
check('dropout', (x) => dropout(x, 0.3, true, new Generator(1)), () => [randn(4, 4)]);

// NOTE: a query row that sees no key at all (the first padded position of a
// causal left-padded row) is flat in its inputs; training gives it label -100.
const paddingBias = attentionBias({ batch: 2, queryLength: 4, keyLength: 4, causal: false, paddingMask: Tensor.fromArray([[0, 1, 1, 1], [1, 1, 1, 1]], 'int32'), dtype: 'float64' });
const causalBias = attentionBias({ batch: 2, queryLength: 4, keyLength: 4, causal: true, dtype: 'float64' });
check('attention with padding', (q, k, v) => scaledDotProductAttention(q, k, v, { bias: paddingBias }), () => [randn(2, 2, 4, 3), randn(2, 2, 4, 3), randn(2, 2, 4, 3)]);
check('causal grouped-query attention', (q, k, v) => scaledDotProductAttention(q, repeatKv(k, 2), repeatKv(v, 2), { bias: causalBias }), () => [randn(2, 4, 4, 3), randn(2, 2, 4, 3), randn(2, 2, 4, 3)]);
check('attention over a key/value cache', (q, k, v) => {
  const bias = attentionBias({ batch: 1, queryLength: 2, keyLength: 5, causal: true, dtype: 'float64' });
  return scaledDotProductAttention(q, k, v, { bias, scale: 0.3 });
}, () => [randn(1, 2, 2, 4), randn(1, 2, 5, 4), randn(1, 2, 5, 4)]);
