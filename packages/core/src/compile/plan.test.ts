/**
 * Planning a traced block: repeated values computed once, and what the backward
 * reads of the forward kept small (views and elementwise values made again from
 * what is saved anyway), with the graphs still giving the eager gradients.
 */
import test from 'ava';
import { decodeGraph, type GraphNode } from '../native/graph.ts';
import { NativeKernel } from '../native/session.ts';
import { silu } from '../ops/index.ts';
import { Tensor } from '../tensor.ts';
import { relativeErrorOf } from '../testing/index.ts';
import { planOf, type Graph } from './plan.ts';
import { mergeRepeats } from './repeats.ts';
import { Trace, withTrace } from './trace.ts';

function randomTensor(shape: number[], seed: number): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  return new Tensor(Float32Array.from({ length: n }, (_, i) => Math.sin(seed * 1.3 + i * 0.77)), shape);
}

const reshape = (input: string, shape: string, output: string): GraphNode => ({ opType: 'Reshape', input: [input, shape], output: [output], domain: '' });
const shapeConstant = (name: string) => ({ name, dims: [2], dataType: 7, int64Data: [6, 4] });

test('a node repeating an earlier one is dropped and its readers read the first, equal constants become one', (t) => {
  const nodes = [reshape('x', 'a/shape', 'a/y'), reshape('x', 'b/shape', 'b/y'), { opType: 'Add', input: ['a/y', 'b/y'], output: ['sum'], domain: '' }];
  const merged = mergeRepeats(nodes, [shapeConstant('a/shape'), shapeConstant('b/shape')], nodes.length, () => true);
  t.deepEqual(merged.initializers.map((c) => c.name), ['a/shape']);
  t.deepEqual(merged.nodes.map((n) => n.input), [['x', 'a/shape'], ['a/y', 'a/y']]);
  t.is(merged.rename('b/y'), 'a/y');
  t.is(merged.rename('sum'), 'sum');
});

test('nodes that differ in an attribute or an input are kept apart', (t) => {
  const softmax = (axis: number, input: string, output: string) => ({ ...reshape(input, '', output), opType: 'Softmax', input: [input], attribute: [{ name: 'axis', type: 2, i: axis }] });
  const nodes = [softmax(-1, 'x', 'p'), softmax(0, 'x', 'q'), softmax(-1, 'z', 'r')];
  t.is(mergeRepeats(nodes, [], nodes.length, () => true).nodes.length, 3);
});

test('a backward node repeating a forward one merges only when the forward value could be saved (its shape is known)', (t) => {
  const nodes = [reshape('x', 's', 'inner'), reshape('x', 's', 'again')];
  t.is(mergeRepeats(nodes, [], 1, () => false).nodes.length, 2);
  const merged = mergeRepeats(nodes, [], 1, () => true);
  t.is(merged.nodes.length, 1);
  t.is(merged.split, 1);
});

/** Run one of a plan's graphs on named tensors. */
function runGraph(graph: Graph, values: ReadonlyMap<string, Tensor>): Tensor[] {
  return new NativeKernel(`plan-test:${graph.inputs.join(',')}`, 'float32', graph.bytes).run(graph.inputs.map((n) => values.get(n)!));
}

test('the forward saves the matmul inputs it cannot remake, not views or elementwise values of them, and the backward still gives the eager gradients', (t) => {
  const [x, w] = [randomTensor([2, 3, 4], 1).requiresGrad_(), randomTensor([4, 5], 2).requiresGrad_()];
  const block = (input: Tensor, weight: Tensor) => {
    const h = silu(input.reshape([6, 4]).matmul(weight)); // [6, 5]
    return h.mul(input.reshape([6, 4]).matmul(weight)).matmul(weight.reshape([5, 4])); // [6, 4]: the repeated product merged
  };
  const dy = randomTensor([6, 4], 3);
  const eager = block(x, w);
  eager.backward(dy);
  const expected = [eager, x.grad!, w.grad!];

  const [xs, ws] = [x.detach().requiresGrad_(), w.detach().requiresGrad_()];
  const trace = new Trace(new Map([['x', xs], ['w', ws]]));
  const y = withTrace(trace, () => block(xs, ws));
  t.is(trace.failure, null);
  trace.backwardFrom = trace.graph.nodes.length;
  trace.define(dy, 'dy');
  withTrace(trace, () => y.backward(dy));
  const plan = planOf(trace, trace.valueOf(y, 'y')!, [trace.valueOf(xs.grad!, 'dx'), trace.valueOf(ws.grad!, 'dw')]);

  const forwardNodes = decodeGraph(plan.forward.bytes).nodes;
  t.is(forwardNodes.filter((n) => n.opType === 'MatMul').length, 2, 'x·w once, then the product with w reshaped');
  const madeBy = new Map(forwardNodes.flatMap((n) => n.output.map((o) => [o, n.opType])));
  t.deepEqual(plan.saved.map((v) => madeBy.get(v)).sort(), ['MatMul'], 'only x·w is saved: silu(x·w) and the product are made again');

  const sources = new Map([['x', x.detach()], ['w', w.detach()], ['dy', dy]]);
  const [out, ...saved] = runGraph(plan.forward, sources);
  plan.saved.forEach((name, i) => sources.set(name, saved[i]));
  const gradients = runGraph(plan.backward!, sources);
  [out, ...gradients].forEach((actual, i) => t.true(relativeErrorOf(actual, expected[i]) < 1e-5, `output ${i}`));
});
