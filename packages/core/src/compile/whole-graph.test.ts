import test from 'ava';
import { Tensor } from '../tensor.ts';
import { Linear } from '../nn/linear.ts';
import { manualSeed } from '../random.ts';
import { GraphBuilder } from '../native/graph.ts';
import { disposeKernels, nativeKernel } from '../native/session.ts';
import { noGrad } from '../autograd.ts';
import { solveMonomial, traceRun, writeGeneralized, type Sizes } from './whole-graph.ts';

const SIZES: Sizes[] = [{ B: 2, T: 3 }, { B: 3, T: 5 }, { B: 5, T: 2 }];

test('a size is solved as the one product of named dims that fits every trace', (t) => {
  t.deepEqual(solveMonomial([6, 15, 10], SIZES, 'c'), { factor: 1, dims: ['B', 'T'] });
  t.deepEqual(solveMonomial([12, 20, 8], SIZES, 'c'), { factor: 4, dims: ['T'] });
  t.deepEqual(solveMonomial([-2, -3, -5], SIZES, 'c'), { factor: -1, dims: ['B'] });
  t.throws(() => solveMonomial([7, 9, 8], SIZES, 'c'), { message: /constant c \(7 at \{"B":2,"T":3\}.*\) is no product of the input's dims/ });
  t.throws(() => solveMonomial([6, 6, 6], [{ B: 2, T: 3 }, { B: 2, T: 3 }, { B: 2, T: 3 }], 'c'), { message: /more than one product/ });
});

/** A graph of `fn(x)` for x [B, T, 8], traced at SIZES, with B and T read from x's shape; `weights` baked in. */
function generalGraph(fn: (x: Tensor) => Tensor, weights = new Map<string, Tensor>()): GraphBuilder {
  const runs = SIZES.map(({ B, T }) => {
    const x = Tensor.randn([B, T, 8]);
    return traceRun({ inputs: new Map([['x', x]]), weights, run: () => [fn(x)] });
  });
  const g = new GraphBuilder('general', 'float32');
  const x = g.input('x');
  const dim = (axis: number) => g.node('Gather', [g.node('Shape', [x]), g.int64Constant([axis])], { axis: 0 });
  const [y] = writeGeneralized(g, runs, SIZES, { B: dim(0), T: dim(1) });
  g.output(g.node('Identity', [y]));
  for (const [name, w] of weights) g.addInitializer({ name, dims: [...w.shape], dataType: 1, floatData: Array.from(w.values) });
  return g;
}

test('a traced function with reshapes by batch and length runs at sizes it was never traced at', (t) => {
  manualSeed(1);
  const linear = new Linear(8, 12);
  const fn = (x: Tensor) => {
    const [b, s] = x.shape;
    const heads = linear.call(x).reshape([b, s, 3, 4]).transpose(1, 2); // [B, 3, T, 4]
    return heads.mul(heads).transpose(1, 2).reshape([b * s, 12]); // [B·T, 12]
  };
  const g = generalGraph(fn, new Map(linear.namedParameters()));
  const kernel = nativeKernel('test-whole-graph', 'float32', () => g.build());
  for (const [b, s] of [[4, 7], [1, 1]]) {
    const x = Tensor.randn([b, s, 8]);
    const [y] = kernel.run([x]);
    const expected = noGrad(() => fn(x));
    t.deepEqual(y.shape, [b * s, 12]);
    t.true(y.values.every((v, i) => Math.abs(v - expected.values[i]) <= 1e-6));
  }
  disposeKernels((key) => key === 'test-whole-graph');
});

test('a float constant shaped by the length cannot be generalized, and the error names it', (t) => {
  const fn = (x: Tensor) => x.mul(Tensor.ones([1, x.shape[1], 1]));
  t.throws(() => generalGraph(fn), { message: /a constant baked_\d+ of shape \[1,3,1\] depends on the input's size/ });
});
