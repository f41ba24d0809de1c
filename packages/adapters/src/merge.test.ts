/**
 * PEFT's merge property (its _test_merge_layers) on every architecture:
 * logits with the adapter = after merge() = after unmerge() = after
 * mergeAndUnload(), and unmerge() restores the original weights.
 */
import test from 'ava';
import { Tensor, init, noGrad } from '@lorakit/core';
import { AutoModelForCausalLM } from '@lorakit/models';
import { LoraConfig } from './config.ts';
import { getPeftModel } from './peft-model.ts';
import { MODEL_FIXTURES, maxAbs } from './testing.ts';

const ARCHITECTURES = ['llama-rope-linear', 'llama-bf16-tied', 'mistral', 'qwen2', 'gpt2', 'qwen3', 'smollm3', 'granite', 'gemma', 'gemma2', 'gemma3_text', 'phi3', 'olmo2'];
const VARIANTS: Array<[string, Partial<ConstructorParameters<typeof LoraConfig>[0]>]> = [
  ['LoRA', {}],
  ['rsLoRA with rank and alpha patterns', { useRslora: true, rankPattern: { 'layers.1.*': 2 }, alphaPattern: { '.*\\.0\\..*': 3 } }],
  ['DoRA', { useDora: true }],
];

for (const arch of ARCHITECTURES) {
  for (const [variant, fields] of VARIANTS) {
    if (arch === 'gpt2' && variant.startsWith('rsLoRA')) continue; // GPT-2 names its layers h.N
    test(`${arch}, ${variant}: adapter = merged = unmerged = merged and unloaded; unmerge restores the weights`, async (t) => {
      const model = await AutoModelForCausalLM.fromPretrained(`${MODEL_FIXTURES}/${arch}`);
      const original = new Map([...model.stateDict()].map(([k, v]) => [k, v.clone()]));
      const peft = getPeftModel(model, new LoraConfig({ r: 4, loraAlpha: 8, targetModules: 'all-linear', ...fields }));
      noGrad(() => peft.loraLayers().forEach(([, layer]) => init.normal_(layer.lora_B.get('default')!.weight, 0, 0.05)));
      const inputIds = Tensor.fromArray([[3, 17, 42, 9, 100, 5]], 'int32');
      const run = () => noGrad(() => peft.call({ inputIds }).logits);
      const withAdapter = run();
      const base = peft.withAdapterDisabled(run);
      t.true(maxAbs(withAdapter, base) > 1e-3, 'the adapter changes the output');
      peft.merge();
      t.true(maxAbs(run(), withAdapter) <= 1e-4, 'merged');
      peft.unmerge();
      t.true(maxAbs(run(), withAdapter) <= 1e-4, 'unmerged');
      for (const [key, value] of model.stateDict()) {
        const plain = key.replace('.base_layer.', '.');
        if (original.has(plain) && !key.includes('lora_')) t.true(maxAbs(value, original.get(plain)!) <= 1e-6, key);
      }
      const merged = peft.mergeAndUnload();
      t.true(maxAbs(noGrad(() => merged.call({ inputIds }).logits), withAdapter) <= 1e-4, 'merged and unloaded');
      t.deepEqual([...merged.stateDict().keys()], [...original.keys()], 'the unloaded model has its original keys');
    });
  }
}
