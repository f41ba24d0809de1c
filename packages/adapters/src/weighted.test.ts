/** add_weighted_adapter with the intended math: the new delta is Σ wᵢ·ΔWᵢ (exactly, or its best rank-k approximation). */
import test from 'ava';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Tensor, init, noGrad } from '@lorakit/core';
import { AutoModelForCausalLM } from '@lorakit/models';
import { LoraConfig } from './config.ts';
import { PeftModel, getPeftModel } from './peft-model.ts';
import type { LoraLinear } from './lora-linear.ts';
import { MODEL_FIXTURES, maxAbs } from './testing.ts';

async function twoAdapters(): Promise<PeftModel> {
  const model = await AutoModelForCausalLM.fromPretrained(`${MODEL_FIXTURES}/llama-rope-linear`);
  const peft = getPeftModel(model, new LoraConfig({ r: 4, loraAlpha: 8, targetModules: ['q_proj', 'v_proj'] }));
  peft.addAdapter('second', new LoraConfig({ r: 2, loraAlpha: 2, targetModules: ['v_proj', 'o_proj'], useRslora: true }));
  noGrad(() => peft.loraLayers().forEach(([, l]) => [...l.settings.keys()].forEach((a) => init.normal_(l.lora_B.get(a)!.weight, 0, 0.1))));
  return peft;
}

const frobenius2 = (t: Tensor) => t.toArray().reduce((s, v) => s + v * v, 0);

for (const combination of ['cat', 'linear'] as const) {
  test(`"${combination}" gives exactly Σ wᵢ·ΔWᵢ in every layer, with scaling 1`, async (t) => {
    const peft = await twoAdapters();
    peft.addWeightedAdapter(['default', 'second'], [0.7, -0.3], 'mix', combination);
    for (const [name, layer] of peft.loraLayers()) {
      const parts = [['default', 0.7], ['second', -0.3]].filter(([a]) => layer.settings.has(a as string)) as Array<[string, number]>;
      const expected = parts.map(([a, w]) => layer.deltaWeight(a).mul(w)).reduce((x, y) => x.add(y));
      t.true(maxAbs(layer.deltaWeight('mix'), expected) < 1e-6, name);
      t.is(layer.settings.get('mix')!.scaling, 1);
      t.is(layer.settings.get('mix')!.r, parts.reduce((r, [a]) => r + layer.settings.get(a)!.r, 0));
    }
    t.deepEqual(peft.peftConfig.get('mix')!.rankPattern, { 'model\\.layers\\.0\\.self_attn\\.q_proj': 4, 'model\\.layers\\.0\\.self_attn\\.o_proj': 2, 'model\\.layers\\.1\\.self_attn\\.q_proj': 4, 'model\\.layers\\.1\\.self_attn\\.o_proj': 2 });
  });
}

test('"svd" at full rank is exact, and truncated it keeps the top singular directions (Pythagoras holds)', async (t) => {
  const peft = await twoAdapters();
  peft.addWeightedAdapter(['default', 'second'], [1, 0.5], 'full', 'svd', { svdRank: 6 });
  peft.addWeightedAdapter(['default', 'second'], [1, 0.5], 'low', 'svd', { svdRank: 2 });
  const layer = peft.model.getSubmodule('model.layers.0.self_attn.v_proj') as LoraLinear;
  const exact = layer.deltaWeight('default').add(layer.deltaWeight('second').mul(0.5));
  t.true(maxAbs(layer.deltaWeight('full'), exact) < 1e-5);
  const low = layer.deltaWeight('low');
  const residual = exact.sub(low);
  t.true(Math.abs(frobenius2(exact) - frobenius2(low) - frobenius2(residual)) < 1e-4 * frobenius2(exact));
  t.true(frobenius2(low) > 0.5 * frobenius2(exact) * (2 / 6), 'keeps at least its share of the energy');
});

test('a combined adapter saves and reloads with its per-layer ranks', async (t) => {
  const peft = await twoAdapters();
  peft.addWeightedAdapter(['default', 'second'], [1, 1], 'mix', 'cat');
  peft.setAdapter('mix');
  const inputIds = Tensor.fromArray([[5, 9, 13, 2]], 'int32');
  const before = noGrad(() => peft.call({ inputIds }).logits);
  const dir = await mkdtemp(join(tmpdir(), 'lorakit-mix-'));
  await peft.savePretrained(dir, { adapterNames: ['mix'] });
  const reloaded = await PeftModel.fromPretrained(await AutoModelForCausalLM.fromPretrained(`${MODEL_FIXTURES}/llama-rope-linear`), join(dir, 'mix'));
  t.true(maxAbs(noGrad(() => reloaded.call({ inputIds }).logits), before) < 1e-5);
});

test('DoRA adapters cannot be combined, and unknown names are errors', async (t) => {
  const peft = await twoAdapters();
  peft.addAdapter('dora', new LoraConfig({ targetModules: ['q_proj'], useDora: true }));
  t.throws(() => peft.addWeightedAdapter(['default', 'dora'], [1, 1], 'x', 'cat'), { message: /uses DoRA/ });
  t.throws(() => peft.addWeightedAdapter(['default', 'nope'], [1, 1], 'x', 'cat'), { message: /no adapter named "nope"/ });
  t.throws(() => peft.addWeightedAdapter(['default'], [1, 1], 'x', 'cat'), { message: /one weight per adapter/ });
});
