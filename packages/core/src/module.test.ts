/** The nn.Module semantics of the tutorial lorakit grew from, one behaviour per test. */
import test from 'ava';
import { Module } from './module.ts';
import { Buffer, Parameter } from './parameter.ts';
import { Tensor } from './tensor.ts';
import { Linear } from './nn/linear.ts';
import { Sequential } from './nn/sequential.ts';
import { SiLU } from './nn/activation.ts';
import { findNonFiniteTensors, findUnregisteredTensors } from './debug.ts';
import { ModuleDict } from './nn/module-dict.ts';
import { manualSeed } from './random.ts';

class Head extends Module {
  mlp = new Sequential(new Linear(2, 3), new SiLU(), new Linear(3, 1));
  w: Parameter | Linear = new Parameter(Tensor.fromArray([0.5]));
  b = new Parameter(Tensor.fromArray([0.1]));

  forward(x: Tensor): Tensor {
    const h = this.mlp.call(x);
    return this.w instanceof Linear ? this.w.call(h).add(this.b) : h.mul(this.w).add(this.b);
  }
}

class Stack extends Module {
  layers = [new Linear(2, 2), new Linear(2, 2)];
  norm = new Linear(2, 2, { bias: false });
  forward(x: Tensor): Tensor {
    return this.norm.call(this.layers.reduce((h, l) => l.call(h), x));
  }
}

const names = (pairs: Array<[string, unknown]>) => pairs.map(([n]) => n);

test('a Parameter is a parameter and never a child; a Module is a child', (t) => {
  const head = new Head();
  t.deepEqual(names(head.namedChildren()), ['mlp']);
  // PyTorch's order: a module's own parameters first, then its children's.
  t.deepEqual(names(head.namedParameters()), ['w', 'b', 'mlp.0.weight', 'mlp.0.bias', 'mlp.2.weight', 'mlp.2.bias']);
});

test('an array of modules yields children name.0, name.1 in assignment order', (t) => {
  const stack = new Stack();
  t.deepEqual(names(stack.namedChildren()), ['layers.0', 'layers.1', 'norm']);
  t.deepEqual(names(stack.namedModules()), ['', 'layers.0', 'layers.1', 'norm']);
  t.is(stack.getSubmodule('layers.1'), stack.layers[1]);
});

test('a plain tensor with requiresGrad is not a parameter, and findUnregisteredTensors says so', (t) => {
  class Sneaky extends Module {
    scale = Tensor.fromArray([2]).requiresGrad_();
    extra = { bias: new Parameter(Tensor.zeros([1])) };
    forward(x: Tensor) { return x.mul(this.scale); }
  }
  const m = new Sneaky();
  t.deepEqual(m.parameters(), []);
  const found = findUnregisteredTensors(m);
  t.deepEqual(found.map((f) => f.path), ['scale', 'extra.bias']);
  t.regex(found[0].reason, /not a parameter/);
});

test('replacing a child shows at once in children, modules, parameters and the state dict', (t) => {
  const head = new Head();
  head.w = new Linear(1, 1);
  t.deepEqual(names(head.namedChildren()), ['mlp', 'w']);
  t.true(head.modules().includes(head.w));
  t.true(names(head.namedParameters()).includes('w.weight'));
  t.false(names(head.namedParameters()).includes('w'));
  t.true(head.stateDict().has('w.bias'));

  const replacement = new Linear(3, 1, { bias: false });
  head.setSubmodule('mlp.2', replacement);
  t.is(head.getSubmodule('mlp.2'), replacement);
  t.false(head.stateDict().has('mlp.2.bias'));
  const stack = new Stack();
  stack.setSubmodule('layers.0', replacement);
  t.is(stack.layers[0], replacement);
});

test('forward hooks run in registration order, may replace the output, and stop after remove()', (t) => {
  const lin = new Linear(2, 2);
  const x = Tensor.fromArray([[1, 2]]);
  const plain = lin.call(x).toArray();
  const seen: string[] = [];
  const stored: Tensor[] = [];
  const store = lin.registerForwardHook((_m, _inputs, out) => { seen.push('store'); stored.push(out as Tensor); });
  const double = lin.registerForwardHook((_m, _inputs, out) => { seen.push('double'); return (out as Tensor).mul(2); });
  const y = lin.call(x);
  t.deepEqual(seen, ['store', 'double']);
  t.deepEqual(stored[0].toArray(), plain);
  t.deepEqual(y.toArray(), plain.map((v) => v * 2));
  double.remove();
  store.remove();
  t.deepEqual(lin.call(x).toArray(), plain);
  t.is(stored.length, 1);
});

test('forward pre-hooks may replace the inputs', (t) => {
  const lin = new Linear(2, 1);
  const zero = Tensor.zeros([1, 2]);
  const handle = lin.registerForwardPreHook((_m, inputs) => [(inputs[0] as Tensor).mul(0)]);
  t.deepEqual(lin.call(Tensor.fromArray([[5, 6]])).toArray(), lin.forward(zero).toArray());
  handle.remove();
  t.notDeepEqual(lin.call(Tensor.fromArray([[5, 6]])).toArray(), lin.forward(zero).toArray());
});

test('freeze() on a subtree: its parameters get no gradient, the rest train', (t) => {
  const head = new Head();
  head.mlp.freeze();
  head.call(Tensor.fromArray([[1, -1]])).sum().backward();
  for (const [name, p] of head.namedParameters()) {
    if (name.startsWith('mlp.')) t.is(p.grad, null, name);
    else t.not(p.grad, null, name);
  }
  t.is(head.numParameters({ trainableOnly: true }), 2);
  head.unfreeze();
  t.is(head.numParameters({ trainableOnly: true }), head.numParameters());
});

test('apply visits children first, then self, and can re-initialise every Linear', (t) => {
  manualSeed(0);
  const head = new Head();
  const order: string[] = [];
  head.apply((m) => order.push(m.constructor.name));
  t.deepEqual(order, ['Linear', 'SiLU', 'Linear', 'Sequential', 'Head']);
  head.apply((m) => { if (m instanceof Linear) m.weight.values.fill(0.25); });
  t.true(head.mlp.children().filter((m) => m instanceof Linear).every((l) => (l as Linear).weight.toArray().every((v) => v === 0.25)));
});

test('tied weights appear once in parameters and under both names in the state dict', (t) => {
  const stack = new Stack();
  stack.norm.weight = stack.layers[0].weight;
  t.is(stack.parameters().filter((p) => p === stack.layers[0].weight).length, 1);
  t.true(stack.stateDict().has('norm.weight'));
  t.is(stack.stateDict().get('norm.weight'), stack.stateDict().get('layers.0.weight'));
});

test('buffers belong in the state dict unless non-persistent, and are never parameters', (t) => {
  class WithBuffers extends Module {
    running = new Buffer(Tensor.zeros([2]));
    cache = new Buffer(Tensor.zeros([2]), false);
    forward(x: Tensor) { return x; }
  }
  const m = new WithBuffers();
  t.deepEqual(names(m.namedBuffers()), ['running', 'cache']);
  t.deepEqual([...m.stateDict().keys()], ['running']);
  t.deepEqual(m.parameters(), []);
});

test('loadStateDict copies values and strict mode lists every problem in one error', (t) => {
  const source = new Stack();
  const target = new Stack();
  target.loadStateDict(source.stateDict());
  t.deepEqual(target.layers[1].weight.toArray(), source.layers[1].weight.toArray());

  const bad = new Map(source.stateDict());
  bad.delete('layers.0.bias');
  bad.set('layers.1.weight', Tensor.zeros([3, 2]));
  bad.set('extra.weight', Tensor.zeros([1]));
  const error = t.throws(() => target.loadStateDict(bad));
  t.regex(error!.message, /missing keys \(1\):\n\s+layers\.0\.bias/);
  t.regex(error!.message, /unexpected keys \(1\):\n\s+extra\.weight/);
  t.regex(error!.message, /layers\.1\.weight: checkpoint \[3,2\], model \[2,2\]/);

  bad.set('layers.1.weight', Tensor.zeros([2, 2]));
  const result = target.loadStateDict(bad, { strict: false });
  t.deepEqual(result, { missingKeys: ['layers.0.bias'], unexpectedKeys: ['extra.weight'] });
});

test('errors name the unknown path and the name with a dot', (t) => {
  const head = new Head();
  t.throws(() => head.getSubmodule('mlp.7'), { message: /Sequential at "mlp" has no submodule "7" \(children: 0, 1, 2\)/ });
  (head as unknown as Record<string, unknown>)['bad.name'] = new Linear(1, 1);
  t.throws(() => head.namedChildren(), { message: /property name "bad.name" contains a dot/ });
});

test('train() and eval() propagate to the whole subtree', (t) => {
  const head = new Head();
  head.eval();
  t.true(head.modules().every((m) => !m.training));
  head.mlp.train();
  t.false(head.training);
  t.true(head.mlp.children().every((m) => m.training));
});

test('toString prints the tree as PyTorch does', (t) => {
  t.is(new Head().toString(), [
    'Head(',
    '  (mlp): Sequential(',
    '    (0): Linear(in_features=2, out_features=3, bias=true)',
    '    (1): SiLU()',
    '    (2): Linear(in_features=3, out_features=1, bias=true)',
    '  )',
    ')',
  ].join('\n'));
});

test('clone copies parameters deeply, keeps ties within the copy and drops hooks', (t) => {
  const stack = new Stack();
  stack.norm.weight = stack.layers[0].weight;
  stack.layers[1].registerForwardHook(() => Tensor.zeros([1, 2]));
  stack.eval();
  const copy = stack.clone();
  t.not(copy.layers[0].weight, stack.layers[0].weight);
  t.deepEqual(copy.layers[0].weight.toArray(), stack.layers[0].weight.toArray());
  t.is(copy.norm.weight, copy.layers[0].weight, 'the tie holds inside the copy');
  copy.layers[0].weight.values[0] = 42;
  t.not(stack.layers[0].weight.values[0], 42);
  t.false(copy.training);
  const x = Tensor.fromArray([[1, 2]]);
  t.notDeepEqual(copy.layers[1].call(x).toArray(), [0, 0], 'hooks are not copied');
});

test('a ModuleDict names its children by key', (t) => {
  const dict = new ModuleDict({ default: new Linear(2, 2), other: new Linear(2, 1) });
  t.deepEqual(dict.keys(), ['default', 'other']);
  t.true(dict.stateDict().has('other.weight'));
  t.throws(() => dict.set('a.b', new Linear(1, 1)), { message: /without dots/ });
});

test('setSubmodule refuses a name the class already uses for a method or accessor', (t) => {
  const head = new Head();
  for (const name of ['train', 'training', 'constructor', '__proto__']) {
    t.throws(() => head.setSubmodule(name, new Linear(1, 1)), { message: /method or accessor/ }, name);
  }
  t.is(Object.getPrototypeOf(head), Head.prototype);
  head.setSubmodule('extra', new Linear(1, 1));
  t.deepEqual(names(head.namedChildren()), ['mlp', 'extra']);
});

test('findNonFiniteTensors counts NaN and Infinity in float tensors, a tied one once', (t) => {
  class Tied extends Module {
    embed = new Linear(2, 3, { bias: false });
    head = this.embed; // tied: the same module under two names
    steps = new Buffer(Tensor.fromArray([1, 2], 'int32'));
    scale = new Parameter(Tensor.fromArray([1, Number.NEGATIVE_INFINITY, 3]));
    forward(): never {
      throw new Error('unused');
    }
  }
  const m = new Tied();
  t.deepEqual(findNonFiniteTensors(m), [{ name: 'scale', count: 1 }]);
  m.embed.weight.values.set([Number.NaN, 0, Number.POSITIVE_INFINITY]);
  t.deepEqual(findNonFiniteTensors(m), [{ name: 'scale', count: 1 }, { name: 'embed.weight', count: 2 }]); // a module's own tensors first
  m.scale.values[0] = Number.NaN;
  t.deepEqual(findNonFiniteTensors(m), [{ name: 'scale', count: 2 }, { name: 'embed.weight', count: 2 }]);
});
