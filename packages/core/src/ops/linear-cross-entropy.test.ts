import test from 'ava';
import { Tensor } from '../tensor.ts';
import { Generator } from '../random.ts';
import { Parameter } from '../parameter.ts';
import { gradcheck } from '../testing/gradcheck.ts';
import { crossEntropy } from './loss.ts';
import { matmul } from './matmul.ts';
import { tanh } from './unary.ts';
import { linearCrossEntropy } from './linear-cross-entropy.ts';

const rng = new Generator(11);
const randn = (...shape: number[]) => Tensor.randn(shape, { generator: rng, dtype: 'float64' });
const targets = new Tensor(Int32Array.of(3, -100, 0, 6, 2, 6, -100), [7]);

/** The same loss from separately tested ops: the head's matmul, the division and cap, crossEntropy. */
function composed(hidden: Tensor, weight: Tensor, divisor: number, softcap: number | null): Tensor {
  const z = matmul(hidden, weight, { transposeB: true }).div(divisor);
  return crossEntropy(softcap === null ? z : tanh(z.div(softcap)).mul(softcap), targets);
}

for (const [divisor, softcap, chunkRows] of [[1, null, 3], [2.5, null, 7], [1, 0.8, 2], [2.5, 0.8, 1]] as const) {
  test(`the fused head and cross-entropy (divisor ${divisor}, softcap ${softcap}, ${chunkRows} rows a chunk) equal the composed ops, gradients included`, (t) => {
    const [hidden, weight] = [randn(7, 5).mul(2), randn(8, 5)];
    const options = { divisor, softcap, chunkRows };
    t.true(Math.abs(linearCrossEntropy(hidden, weight, targets, options).item() - composed(hidden, weight, divisor, softcap).item()) < 1e-12);
    const grads = (f: (h: Tensor, w: Tensor) => Tensor) => {
      const [h, w] = [hidden.clone().requiresGrad_(), new Parameter(weight.clone())];
      f(h, w).backward();
      return [h.grad!, w.grad!].flatMap((g) => g.toArray());
    };
    const [fused, reference] = [grads((h, w) => linearCrossEntropy(h, w, targets, options)), grads((h, w) => composed(h, w, divisor, softcap))];
    t.true(fused.every((g, i) => Math.abs(g - reference[i]) < 1e-12));
    t.true(gradcheck((h) => linearCrossEntropy(h, weight, targets, options), [hidden]).maxError < 1e-6);
  });
}

for (const [divisor, softcap] of [[1, null], [2.5, 0.8]] as const) {
  test(`with a frozen weight the gradient made in the forward equals the composed ops' for any upstream gradient (divisor ${divisor}, softcap ${softcap})`, (t) => {
    const [hidden, weight] = [randn(7, 5).mul(2), randn(8, 5)];
    const gradient = (f: (h: Tensor) => Tensor) => {
      const h = hidden.clone().requiresGrad_();
      f(h).mul(-3).backward();
      return h.grad!.toArray();
    };
    const fused = gradient((h) => linearCrossEntropy(h, weight, targets, { divisor, softcap, chunkRows: 3 }));
    const reference = gradient((h) => composed(h, weight, divisor, softcap));
    t.true(fused.every((g, i) => Math.abs(g - reference[i]) < 1e-12));
  });
}

test('a frozen weight gets no gradient and costs no weight-gradient matmul; float32 agrees with float64', (t) => {
  const [hidden, weight] = [randn(7, 5).to('float32').requiresGrad_(), randn(8, 5).to('float32')];
  linearCrossEntropy(hidden, weight, targets).backward();
  t.is(weight.grad, null);
  const reference = composed(hidden.detach().to('float64'), weight.to('float64'), 1, null).item();
  t.true(Math.abs(linearCrossEntropy(hidden.detach(), weight, targets).item() - reference) < 1e-6);
});

test('bad shapes and targets are errors naming them', (t) => {
  t.throws(() => linearCrossEntropy(randn(7, 5), randn(8, 4), targets), { message: /hidden \[7,5\] and weight \[8,4\] must be \[N, C\] and \[V, C\]/ });
  t.throws(() => linearCrossEntropy(randn(7, 5), randn(6, 5), targets), { message: /target 6 is outside \[0, 6\)/ });
});
