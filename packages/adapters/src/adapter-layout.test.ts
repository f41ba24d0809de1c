/** expectedAdapterTensors: from the layout alone, the keys and shapes the loaded PeftModel holds, for every PEFT-made adapter. */
import test from 'ava';
import { readdirSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { AutoModelForCausalLM, loadConfig, weightLayout } from '@lorakit/models';
import { expectedAdapterTensors } from './adapter-layout.ts';
import { adapterStateDict } from './adapter-io.ts';
import { LoraConfig } from './config.ts';
import { PeftModel } from './peft-model.ts';
import { ADAPTER_FIXTURES, MODEL_FIXTURES, PEFT_FIXTURES, TINY_CODE_LLAMA } from './testing.ts';

const cases: Array<[string, string, string]> = [
  ['codellama_qv_r8', TINY_CODE_LLAMA, `${PEFT_FIXTURES}/codellama_qv_r8/adapter`],
  ...await Promise.all(readdirSync(ADAPTER_FIXTURES).filter((n) => !n.endsWith('.json')).map(async (name): Promise<[string, string, string]> => {
    const { base } = JSON.parse(await readFile(`${ADAPTER_FIXTURES}/${name}/case.json`, 'utf8')) as { base: string };
    return [name, `${MODEL_FIXTURES}/${base}`, `${ADAPTER_FIXTURES}/${name}/adapter`];
  })),
];

for (const [name, model, adapter] of cases) {
  test(`the ${name} adapter's expected tensors from the layout are the loaded model's`, async (t) => {
    const peft = await PeftModel.fromPretrained(await AutoModelForCausalLM.fromPretrained(model), adapter, { onWarning: () => {} });
    const loaded = [...adapterStateDict(peft, 'default')].map(([k, v]) => [k, [...v.shape]]);
    const expected = expectedAdapterTensors(weightLayout(await loadConfig(model)), peft.peftConfig.get('default')!);
    t.deepEqual([...expected], loaded);
  });
}

test('target selection on the layout gives the loader\'s errors', async (t) => {
  const layout = weightLayout(await loadConfig(TINY_CODE_LLAMA));
  t.throws(() => expectedAdapterTensors(layout, new LoraConfig({ targetModules: ['query_key_value'] })), { name: 'NoMatchingModules', message: /matched no module of the llama model/ });
  t.throws(() => expectedAdapterTensors(layout, new LoraConfig({ targetModules: '.*\\.self_attn' })), { message: /target module model\.layers\.0\.self_attn is a LlamaAttention/ });
  t.throws(() => expectedAdapterTensors(layout, new LoraConfig({ targetModules: ['q_proj'], rankPattern: { gate_proj: 2 } })), { message: /rankPattern: key "gate_proj" matches none of the 6 targeted modules/ });
});
