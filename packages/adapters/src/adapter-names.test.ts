/**
 * PEFT takes any adapter name that is a valid key, so lorakit does too: names
 * that are also members of a module or of every object (`get`, `keys`,
 * `training`, `constructor`, `__proto__`) train, save, load and merge like
 * `default`, in lora_A/lora_B and in modules_to_save alike.
 */
import test from 'ava';
import { mkdtemp, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Tensor, init, manualSeed, noGrad } from '@lorakit/core';
import { AutoModelForCausalLM } from '@lorakit/models';
import { LoraConfig } from './config.ts';
import { LoraLinear } from './lora-linear.ts';
import { PeftModel, getPeftModel } from './peft-model.ts';
import { MODEL_FIXTURES, maxAbs } from './testing.ts';

const NAMES = ['get', 'keys', 'training', 'constructor', '__proto__'];
const MODEL = `${MODEL_FIXTURES}/qwen2`;
const inputIds = Tensor.fromArray([[7, 3, 99, 12, 5, 40]], 'int32');
const config = () => new LoraConfig({ targetModules: ['q_proj', 'v_proj'], modulesToSave: ['lm_head'], r: 2, loraDropout: 0.1 });
const logits = (model: { call(inputs: { inputIds: Tensor }): { logits: Tensor } }) => noGrad(() => model.call({ inputIds }).logits);

/** One SGD step on the active adapter; returns how far its parameters moved. */
function trainStep(peft: PeftModel): number {
  peft.train();
  const params = peft.trainableParameters().map(([, p]) => p);
  const before = params.map((p) => Float32Array.from(p.values));
  peft.call({ inputIds, labels: inputIds }).loss!.backward();
  for (const p of params) p.values.forEach((v, i) => (p.values[i] = v - 0.5 * p.grad!.values[i]));
  peft.zeroGrad();
  peft.eval();
  return Math.max(...params.map((p, i) => maxAbs(p, new Tensor(before[i], p.shape))));
}

for (const name of NAMES) {
  test.serial(`an adapter named "${name}" trains a step, saves, loads and merges`, async (t) => {
    manualSeed(3);
    const peft = getPeftModel(await AutoModelForCausalLM.fromPretrained(MODEL), config(), name);
    t.deepEqual([...peft.peftConfig.keys()], [name]);
    const layer = peft.loraLayers()[0][1];
    t.deepEqual(layer.lora_A.keys(), [name]);
    t.true(peft.trainableParameters().every(([key]) => key.includes(`.${name}.`)), 'only the adapter and its modules_to_save copy train');
    t.is(peft.trainableParameters().length, 2 * 2 * 2 + 1);
    t.true(trainStep(peft) > 1e-4, 'the step moved the adapter');
    const trained = logits(peft);

    const dir = await mkdtemp(join(tmpdir(), 'lorakit-names-'));
    await peft.savePretrained(dir);
    t.deepEqual(await readdir(join(dir, name)), ['adapter_config.json', 'adapter_model.safetensors']);
    const loaded = await PeftModel.fromPretrained(await AutoModelForCausalLM.fromPretrained(MODEL), join(dir, name), { adapterName: name });
    t.true(maxAbs(logits(loaded), trained) < 1e-6, 'the loaded adapter gives the trained logits');

    const merged = loaded.mergeAndUnload();
    t.false(merged.modules().some((m) => m instanceof LoraLinear));
    t.true(maxAbs(logits(merged), trained) < 1e-5, 'the merged model gives the trained logits');
  });
}

test.serial('all those names side by side in one model: each runs alone, switches and deletes cleanly', async (t) => {
  manualSeed(4);
  const peft = getPeftModel(await AutoModelForCausalLM.fromPretrained(MODEL), config());
  for (const name of NAMES) peft.addAdapter(name, config());
  noGrad(() => peft.loraLayers().forEach(([, l]) => l.lora_B.values().forEach((b) => init.normal_(b.weight, 0, 0.1))));
  const base = peft.withAdapterDisabled(() => logits(peft));
  const outputs = new Map<string, Tensor>();
  for (const name of ['default', ...NAMES]) {
    peft.setAdapter(name);
    t.true(peft.trainableParameters().every(([key]) => key.includes(`.${name}.`)), name);
    outputs.set(name, logits(peft));
    t.true(maxAbs(outputs.get(name)!, base) > 1e-4, `${name} changes the output`);
  }
  t.is(peft.namedParameters().filter(([key]) => key.includes('.lora_A.')).length, 2 * 2 * (NAMES.length + 1));
  t.true(peft.stateDict().has('base_model.model.model.layers.1.self_attn.v_proj.lora_B.__proto__.weight'));
  for (const name of ['default', ...NAMES]) t.true(peft.stateDict().has(`base_model.model.lm_head.modules_to_save.${name}.weight`), `${name} has its own lm_head copy`);
  for (const name of NAMES) peft.deleteAdapter(name);
  t.deepEqual(peft.loraLayers()[0][1].lora_A.keys(), ['default']);
  t.deepEqual([...peft.stateDict().keys()].filter((key) => key.includes('.modules_to_save.')), ['base_model.model.lm_head.modules_to_save.default.weight']);
  t.true(maxAbs(logits(peft), outputs.get('default')!) < 1e-6);
});
