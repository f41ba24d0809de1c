/** PeftModel's adapter management: switching, disabling, deleting, and a merge that refuses NaN. */
import test from 'ava';
import { Tensor, init, noGrad } from '@lorakit/core';
import { AutoModelForCausalLM } from '@lorakit/models';
import { LoraConfig } from './config.ts';
import { getPeftModel } from './peft-model.ts';
import { LoraLinear } from './lora-linear.ts';
import { MODEL_FIXTURES, maxAbs } from './testing.ts';

const inputIds = Tensor.fromArray([[7, 3, 99, 12, 5]], 'int32');

async function withTwoAdapters() {
  const peft = getPeftModel(await AutoModelForCausalLM.fromPretrained(`${MODEL_FIXTURES}/qwen2`), new LoraConfig({ targetModules: ['q_proj'] }));
  peft.addAdapter('other', new LoraConfig({ targetModules: ['q_proj', 'up_proj'], r: 2 }));
  noGrad(() => peft.loraLayers().forEach(([, l]) => [...l.settings.keys()].forEach((a) => init.normal_(l.lora_B.get(a)!.weight, 0, 0.1))));
  return peft;
}
const logits = (peft: Awaited<ReturnType<typeof withTwoAdapters>>) => noGrad(() => peft.call({ inputIds }).logits);

test('setAdapter switches which adapter runs and which one trains', async (t) => {
  const peft = await withTwoAdapters();
  const first = logits(peft);
  peft.setAdapter('other');
  t.true(maxAbs(logits(peft), first) > 1e-3);
  t.true(peft.trainableParameters().every(([n]) => n.includes('.other.')));
  t.is(peft.trainableParameters().length, 2 * 2 * 2);
  peft.setAdapter('default');
  t.true(maxAbs(logits(peft), first) < 1e-6);
  t.throws(() => peft.setAdapter('missing'), { message: /no adapter named "missing"; adapters: default, other/ });
});

test('withAdapterDisabled runs the base model and restores the adapter, even after an error', async (t) => {
  const peft = await withTwoAdapters();
  const adapted = logits(peft);
  const base = peft.withAdapterDisabled(() => logits(peft));
  t.true(maxAbs(adapted, base) > 1e-3);
  t.throws(() => peft.withAdapterDisabled(() => { throw new Error('inside'); }), { message: 'inside' });
  t.true(maxAbs(logits(peft), adapted) < 1e-6);
});

test('deleteAdapter removes its modules and keys', async (t) => {
  const peft = await withTwoAdapters();
  peft.deleteAdapter('other');
  t.false([...peft.stateDict().keys()].some((k) => k.includes('.other.')));
  t.deepEqual([...peft.peftConfig.keys()], ['default']);
  t.true(peft.model.getSubmodule('model.layers.0.mlp.up_proj') instanceof LoraLinear, 'the wrapper stays, empty, as in PEFT');
});

test('safeMerge refuses an adapter that would put NaN in a weight and changes nothing', async (t) => {
  const peft = await withTwoAdapters();
  const layer = peft.model.getSubmodule('model.layers.1.self_attn.q_proj') as LoraLinear;
  const before = layer.base.denseWeight().clone();
  layer.lora_B.get('default')!.weight.values[0] = Number.NaN;
  t.throws(() => peft.safeMerge(), { message: /would put NaN or Inf into base_model\.model\.model\.layers\.1\.self_attn\.q_proj; nothing was merged/ });
  t.false(peft.loraLayers().some(([, l]) => l.merged));
  t.deepEqual(layer.base.denseWeight().toArray(), before.toArray());
});

test('adapter names must be new and dot-free', async (t) => {
  const peft = await withTwoAdapters();
  t.throws(() => peft.addAdapter('other', new LoraConfig({ targetModules: ['q_proj'] })), { message: /already exists/ });
  t.throws(() => peft.addAdapter('a.b', new LoraConfig({ targetModules: ['q_proj'] })), { message: /without dots/ });
});
