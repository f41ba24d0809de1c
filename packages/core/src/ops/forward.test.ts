/** Forward values against references computed by hand or by PyTorch. */
import test from 'ava';
import { Tensor } from '../tensor.ts';
import { allClose } from '../testing/assert.ts';
import { matmul } from './matmul.ts';
import { gelu, silu } from './unary.ts';
import { swiglu } from './swiglu.ts';
import { softmax, logSoftmax } from './softmax.ts';
import { crossEntropy } from './loss.ts';
import { attentionBias, scaledDotProductAttention } from './attention.ts';
import { layerNorm, rmsNorm } from './norm.ts';
import { dropout } from './dropout.ts';
import { embedding } from './embedding.ts';
import { Generator } from '../random.ts';
import { max, sum } from './reduce.ts';
import { applyRotary, rotaryTables } from './rope.ts';
import { concat, permute, slice } from './layout.ts';

test('matmul of [2,3] by [3,2] is the textbook product', (t) => {
  const a = Tensor.fromArray([[1, 2, 3], [4, 5, 6]]);
  const b = Tensor.fromArray([[7, 8], [9, 10], [11, 12]]);
  t.deepEqual(matmul(a, b).toArray(), [58, 64, 139, 154]);
  t.deepEqual(matmul(b, a, { transposeA: true, transposeB: true }).toArray(), [58, 139, 64, 154]);
});

test('matmul errors name the op and both shapes', (t) => {
  const error = t.throws(() => matmul(Tensor.zeros([2, 3]), Tensor.zeros([4, 5])));
  t.regex(error!.message, /matmul of \[2,3\] by \[4,5\]: inner dimensions 3 and 4 differ/);
});

test('activations match PyTorch', (t) => {
  const x = Tensor.fromArray([-1, 0, 1, 3]);
  t.true(allClose(silu(x), [-0.2689414213699951, 0, 0.7310585786300049, 2.8577223804673]));
  t.true(allClose(gelu(x), [-0.15865525393145707, 0, 0.8413447460685429, 2.995950312842538]));
  t.true(allClose(swiglu(x, Tensor.fromArray([2, 2, 2, 2])), [-0.5378828427399902, 0, 1.4621171572600098, 5.7154447609346]));
  t.true(allClose(gelu(x, 'tanh'), [-0.15880800939172324, 0, 0.8411919906082768, 2.9963627388497625]));
});

test('softmax and logSoftmax are stable for large logits', (t) => {
  const x = Tensor.fromArray([[1000, 1001, 1002]]);
  t.true(allClose(softmax(x), [0.09003057317038046, 0.24472847105479764, 0.6652409557748219]));
  t.true(allClose(logSoftmax(x), [-2.4076059644443806, -1.4076059644443804, -0.4076059644443803]));
});

test('crossEntropy averages over targets that are not ignored', (t) => {
  const logits = Tensor.fromArray([[2, 0, 0], [0, 0, 0], [0, 5, 0]]);
  const loss = crossEntropy(logits, Tensor.fromArray([0, -100, 1], 'int64'));
  const expected = (Math.log(Math.exp(2) + 2) - 2 + Math.log(Math.exp(5) + 2) - 5) / 2;
  t.true(Math.abs(loss.item() - expected) < 1e-6);
});

test('causal attention with padding matches a hand computation', (t) => {
  // One head, 3 positions, the first one padding: position 2 attends to 1 and 2.
  const q = Tensor.fromArray([[[[1, 0], [0, 1], [1, 1]]]]);
  const k = Tensor.fromArray([[[[1, 0], [0, 2], [1, -1]]]]);
  const v = Tensor.fromArray([[[[1, 2], [3, 4], [5, 6]]]]);
  const bias = attentionBias({ batch: 1, queryLength: 3, keyLength: 3, causal: true, paddingMask: Tensor.fromArray([[0, 1, 1]], 'int32') });
  const out = scaledDotProductAttention(q, k, v, { bias }).toArray();
  const s = 1 / Math.sqrt(2);
  const w1 = Math.exp(2 * s), w2 = Math.exp(0);
  const last = [(3 * w1 + 5 * w2) / (w1 + w2), (4 * w1 + 6 * w2) / (w1 + w2)];
  t.true(allClose(out.slice(4), last));
  t.true(allClose(out.slice(2, 4), [3, 4])); // position 1 sees only itself
});

test('rmsNorm normalizes by the root mean square', (t) => {
  const y = rmsNorm(Tensor.fromArray([[3, 4]]), Tensor.fromArray([1, 2]), 0);
  const rms = Math.sqrt(12.5);
  t.true(allClose(y, [3 / rms, 8 / rms]));
});

test('reductions and layout ops move the right elements', (t) => {
  const x = Tensor.fromArray([[[1, 2], [3, 4], [5, 6]]]); // [1, 3, 2]
  t.deepEqual(sum(x, 1).toArray(), [9, 12]);
  t.deepEqual(max(x, -1).toArray(), [2, 4, 6]);
  t.deepEqual(permute(x, [2, 1, 0]).toArray(), [1, 3, 5, 2, 4, 6]);
  t.deepEqual(slice(x, 1, 1, 3).toArray(), [3, 4, 5, 6]);
  t.deepEqual(concat([x, x], 2).shape, [1, 3, 4]);
  t.deepEqual(concat([x, x], 2).toArray().slice(0, 4), [1, 2, 1, 2]);
});

test('rotary embedding rotates each (x_i, x_{i+h}) pair by position × frequency', (t) => {
  const { cos, sin } = rotaryTables([0, 3], Float64Array.from([0.5, 0.25]));
  const x = Tensor.fromArray([[[[1, 2, 0, 0], [1, 2, 0, 0]]]]); // [1, 1, 2, 4]
  const y = applyRotary(x, new Tensor(cos, [1, 1, 2, 4]), new Tensor(sin, [1, 1, 2, 4])).toArray();
  t.true(allClose(y.slice(0, 4), [1, 2, 0, 0]));
  t.true(allClose(y.slice(4), [Math.cos(1.5), 2 * Math.cos(0.75), Math.sin(1.5), 2 * Math.sin(0.75)]));
});

test('layerNorm centres and scales each row', (t) => {
  const y = layerNorm(Tensor.fromArray([[1, 2, 3]]), Tensor.fromArray([1, 1, 2]), Tensor.fromArray([0, 1, 0]), 0);
  const s = Math.sqrt(2 / 3);
  t.true(allClose(y, [-1 / s, 1, 2 / s]));
});

test('dropout zeroes about p of the elements and scales the rest by 1/(1-p)', (t) => {
  const y = dropout(Tensor.ones([10000]), 0.25, true, new Generator(3)).toArray();
  const zeros = y.filter((v) => v === 0).length;
  t.true(Math.abs(zeros / 10000 - 0.25) < 0.02);
  t.true(y.every((v) => v === 0 || Math.abs(v - 4 / 3) < 1e-6));
  t.deepEqual(dropout(Tensor.ones([3]), 0.5, false).toArray(), [1, 1, 1]);
});

test('embedding gathers rows by id and rejects ids outside the table', (t) => {
  const table = Tensor.fromArray([[0, 1], [2, 3], [4, 5]]);
  t.deepEqual(embedding(Tensor.fromArray([[2, 0]], 'int32'), table).toArray(), [4, 5, 0, 1]);
  t.throws(() => embedding(Tensor.fromArray([3], 'int32'), table), { message: /id 3 is outside the table of 3 rows/ });
});
