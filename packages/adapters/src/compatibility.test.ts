import test from 'ava';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Tensor, init, noGrad } from '@lorakit/core';
import { AutoModelForCausalLM } from '@lorakit/models';
import { LoraConfig } from './config.ts';
import { PeftModel, getPeftModel } from './peft-model.ts';
import { bakeScalingForLlamaCpp, checkAdapterCompatibility } from './compatibility.ts';
import { ADAPTER_FIXTURES, MODEL_FIXTURES, PEFT_FIXTURES, maxAbs } from './testing.ts';

test('a plain LoRA adapter suits vLLM and llama.cpp', async (t) => {
  for (const target of ['vllm', 'llama.cpp'] as const) {
    const report = await checkAdapterCompatibility(`${PEFT_FIXTURES}/codellama_qv_r8/adapter`, target);
    t.deepEqual(report, { target, compatible: true, problems: [] });
  }
});

test('vLLM: DoRA, biases, modules_to_save and large ranks are reported with what to do', async (t) => {
  t.deepEqual((await checkAdapterCompatibility(`${ADAPTER_FIXTURES}/dora/adapter`, 'vllm')).problems.map((p) => p.code), ['dora']);
  t.deepEqual((await checkAdapterCompatibility(`${ADAPTER_FIXTURES}/gpt2-bias-all/adapter`, 'vllm')).problems.map((p) => p.code), ['bias']);
  t.deepEqual((await checkAdapterCompatibility(`${ADAPTER_FIXTURES}/modules-to-save/adapter`, 'vllm')).problems.map((p) => p.code), ['modules-to-save']);
  const rank = await checkAdapterCompatibility(`${PEFT_FIXTURES}/codellama_qv_r8/adapter`, 'vllm', { maxLoraRank: 4 });
  t.is(rank.problems[0].fix, 'start vLLM with --max-lora-rank 8');
});

test('llama.cpp: rsLoRA and alpha_pattern are misread; baking fixes the scaling without changing the output', async (t) => {
  const report = await checkAdapterCompatibility(`${ADAPTER_FIXTURES}/rslora-rank-alpha-patterns/adapter`, 'llama.cpp');
  t.deepEqual(report.problems.map((p) => p.code), ['rslora', 'alpha-pattern']);

  const model = await AutoModelForCausalLM.fromPretrained(`${MODEL_FIXTURES}/mistral`);
  const peft = getPeftModel(model, new LoraConfig({ r: 4, loraAlpha: 8, targetModules: ['q_proj', 'v_proj'], useRslora: true, alphaPattern: { v_proj: 3 } }));
  noGrad(() => peft.loraLayers().forEach(([, l]) => init.normal_(l.lora_B.get('default')!.weight, 0, 0.1)));
  const dir = await mkdtemp(join(tmpdir(), 'lorakit-bake-'));
  await peft.savePretrained(join(dir, 'original'));
  await bakeScalingForLlamaCpp(join(dir, 'original'), join(dir, 'baked'));
  t.true((await checkAdapterCompatibility(join(dir, 'baked'), 'llama.cpp')).compatible);
  const inputIds = Tensor.fromArray([[4, 8, 15, 16, 23, 42]], 'int32');
  const expected = noGrad(() => peft.call({ inputIds }).logits);
  const baked = await PeftModel.fromPretrained(await AutoModelForCausalLM.fromPretrained(`${MODEL_FIXTURES}/mistral`), join(dir, 'baked'));
  t.true(maxAbs(noGrad(() => baked.call({ inputIds }).logits), expected) < 1e-5);
  await t.throwsAsync(bakeScalingForLlamaCpp(join(dir, 'original'), join(dir, 'original')), { message: /is the input adapter/ });
});
