/**
 * ModuleDict keys are data, not members: a key named like a method, an
 * accessor or Object.prototype's plumbing is an ordinary child, and every walk
 * of the tree (namedModules, parameters, stateDict, apply, clone, paths) sees it.
 */
import test from 'ava';
import { Module } from '../module.ts';
import { Tensor } from '../tensor.ts';
import { findUnregisteredTensors } from '../debug.ts';
import { Linear } from './linear.ts';
import { ModuleDict } from './module-dict.ts';

const AWKWARD = ['get', 'keys', 'set', 'training', 'constructor', '__proto__', 'toString', 'hasOwnProperty', 'forward', 'namedChildren'];

class Owner extends Module {
  heads = new ModuleDict<Linear>();
  forward(name: string, x: Tensor): Tensor {
    return this.heads.get(name)!.call(x);
  }
}

function awkwardDict(): ModuleDict<Linear> {
  const dict = new ModuleDict<Linear>();
  AWKWARD.forEach((key, i) => {
    const layer = new Linear(2, 1, { bias: false });
    layer.weight.values.set([i, -i]);
    dict.set(key, layer);
  });
  return dict;
}

test('keys named like members are plain entries and leave the module intact', (t) => {
  const dict = awkwardDict();
  t.deepEqual(dict.keys(), AWKWARD);
  t.deepEqual(dict.namedChildren().map(([name]) => name), AWKWARD);
  for (const [i, key] of AWKWARD.entries()) {
    t.true(dict.has(key), key);
    t.deepEqual(Array.from(dict.get(key)!.weight.values), [i, -i], key);
  }
  t.is(typeof dict.keys, 'function');
  t.true(dict.training);
  t.is(Object.getPrototypeOf(dict), ModuleDict.prototype);
  t.is(dict.constructor, ModuleDict);
  t.false(dict.has('size'));
  t.is(dict.get('missing'), undefined);
  t.deepEqual(findUnregisteredTensors(dict), []);
});

test('the tree walkers see the entries: modules, parameters, stateDict, train and apply', (t) => {
  const owner = new Owner();
  AWKWARD.forEach((key) => owner.heads.set(key, new Linear(2, 1, { bias: false })));
  t.deepEqual(owner.namedModules().map(([n]) => n), ['', 'heads', ...AWKWARD.map((k) => `heads.${k}`)]);
  t.deepEqual(owner.namedParameters().map(([n]) => n), AWKWARD.map((k) => `heads.${k}.weight`));
  const state = owner.stateDict();
  t.deepEqual([...state.keys()], AWKWARD.map((k) => `heads.${k}.weight`));
  owner.eval();
  t.true(owner.heads.values().every((m) => !m.training));
  const visited: Module[] = [];
  owner.apply((m) => visited.push(m));
  t.is(visited.length, AWKWARD.length + 2);
  t.regex(owner.toString(), /\(__proto__\): Linear\(in_features=2/);
});

test('loadStateDict fills every entry and names a missing one', (t) => {
  const source = awkwardDict();
  const target = new ModuleDict<Linear>(AWKWARD.map((k) => [k, new Linear(2, 1, { bias: false })] as const));
  target.loadStateDict(source.stateDict());
  for (const key of AWKWARD) t.deepEqual(Array.from(target.get(key)!.weight.values), Array.from(source.get(key)!.weight.values), key);
  const partial = new Map(source.stateDict());
  partial.delete('__proto__.weight');
  t.throws(() => target.loadStateDict(partial), { message: /missing keys \(1\):\n\s+__proto__\.weight/ });
});

test('paths reach entries: getSubmodule and setSubmodule through the dict', (t) => {
  const owner = new Owner();
  owner.heads = awkwardDict();
  for (const key of AWKWARD) t.is(owner.getSubmodule(`heads.${key}`), owner.heads.get(key)!);
  const replacement = new Linear(2, 1);
  owner.setSubmodule('heads.__proto__', replacement);
  owner.setSubmodule('heads.new', replacement);
  t.is(owner.heads.get('__proto__'), replacement);
  t.is(owner.heads.get('new'), replacement);
  t.is(Object.getPrototypeOf(owner.heads), ModuleDict.prototype);
  t.throws(() => owner.getSubmodule('heads.absent'), { message: /ModuleDict at "heads" has no submodule "absent"/ });
});

test('clone copies the entries: a separate dict with its own weights, ties kept', (t) => {
  const dict = awkwardDict();
  dict.set('tied', dict.get('get')!);
  const copy = dict.clone();
  t.deepEqual(copy.keys(), dict.keys());
  t.not(copy.get('__proto__'), dict.get('__proto__'));
  t.deepEqual(Array.from(copy.get('keys')!.weight.values), Array.from(dict.get('keys')!.weight.values));
  t.is(copy.get('tied'), copy.get('get'), 'a module under two keys stays one module in the copy');
  copy.set('extra', new Linear(2, 1, { bias: false }));
  copy.delete('training');
  t.false(dict.has('extra'));
  t.true(dict.has('training'));
  t.is(copy.namedParameters().length, AWKWARD.length, 'the tied module counts once, the deleted one is gone, the new one is in');
});

test('construction from a Map keeps a __proto__ key; bad keys and values are refused', (t) => {
  const layer = new Linear(1, 1);
  t.deepEqual(new ModuleDict(new Map([['__proto__', layer]])).keys(), ['__proto__']);
  t.deepEqual(new ModuleDict({ a: layer, b: layer }).keys(), ['a', 'b']);
  const dict = new ModuleDict();
  t.throws(() => dict.set('a.b', layer), { message: /without dots/ });
  t.throws(() => dict.set('', layer), { message: /non-empty/ });
  t.throws(() => dict.set('x', {} as Module), { message: /not a Module/ });
  t.true(dict.delete === ModuleDict.prototype.delete);
  dict.set('x', layer);
  t.true(dict.delete('x'));
  t.false(dict.delete('x'));
  t.deepEqual(dict.namedChildren(), []);
});
