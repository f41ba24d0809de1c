import test from 'ava';
import { Tensor } from '../tensor.ts';
import { Module } from '../module.ts';
import { Parameter } from '../parameter.ts';
import { ParameterDict } from './parameter-dict.ts';

class Holder extends Module {
  lora_embedding_A = new ParameterDict();
  forward(x: Tensor): Tensor {
    return x;
  }
}

test('parameters under keys are the module\'s own tensors, named without .weight as in PyTorch', (t) => {
  const holder = new Holder();
  holder.lora_embedding_A.set('default', new Parameter(Tensor.zeros([2, 3])));
  holder.lora_embedding_A.set('keys', new Parameter(Tensor.ones([1])));
  t.deepEqual([...holder.stateDict().keys()], ['lora_embedding_A.default', 'lora_embedding_A.keys']);
  t.is(holder.numParameters(), 7);
});

test('a key with a dot, an empty key or a value that is not a Parameter is refused', (t) => {
  const dict = new ParameterDict();
  t.throws(() => dict.set('a.b', new Parameter(Tensor.zeros([1]))), { message: /ParameterDict: key "a.b" must be non-empty and without dots/ });
  t.throws(() => dict.set('', new Parameter(Tensor.zeros([1]))), { message: /must be non-empty/ });
  t.throws(() => dict.set('x', Tensor.zeros([1]) as unknown as Parameter), { message: /ParameterDict: the value for "x" is not a Parameter/ });
});

test('a clone owns copies of the parameters', (t) => {
  const holder = new Holder();
  holder.lora_embedding_A.set('default', new Parameter(Tensor.zeros([2])));
  const copy = holder.clone();
  copy.lora_embedding_A.get('default')!.values[0] = 5;
  t.is(holder.lora_embedding_A.get('default')!.values[0], 0);
  t.true(copy.lora_embedding_A.get('default') instanceof Parameter);
});
