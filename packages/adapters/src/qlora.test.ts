/** QLoRA: LoRA on a 4-bit base, through the same getPeftModel and the same fused kernel. */
import test from 'ava';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Tensor, manualSeed, noGrad } from '@lorakit/core';
import { Linear, Linear4bit } from '@lorakit/core/nn';
import { matmul } from '@lorakit/core/ops';
import { relativeErrorOf } from '@lorakit/core/testing';
import { AutoModelForCausalLM, saveModel } from '@lorakit/models';
import { LoraConfig } from './config.ts';
import { PeftModel, getPeftModel } from './peft-model.ts';
import { LoraLinear } from './lora-linear.ts';
import { quantizeModel } from './quantize-model.ts';
import { MODEL_FIXTURES, TINY_CODE_LLAMA, houseStyleLosses } from './testing.ts';

test.serial('quantizeModel turns every Linear but the head into Linear4bit, and LoRA wraps them', async (t) => {
  const model = await AutoModelForCausalLM.fromPretrained(TINY_CODE_LLAMA);
  const names = await quantizeModel(model);
  t.is(names.length, 6 * 7);
  t.is(model.getSubmodule('lm_head').constructor.name, 'Linear');
  const peft = getPeftModel(model, new LoraConfig({ r: 8, loraAlpha: 16, targetModules: ['q_proj', 'v_proj'] }));
  const q = peft.model.getSubmodule('model.layers.0.self_attn.q_proj') as LoraLinear;
  t.true(q.base_layer instanceof Linear4bit);
  t.is(peft.numParameters({ trainableOnly: true }), 43_008);
});

test.serial('the fused LoRA kernel on a 4-bit base equals base(x) + s·(x·Aᵀ)·Bᵀ, and its gradients match', async (t) => {
  manualSeed(3);
  const model = await AutoModelForCausalLM.fromPretrained(TINY_CODE_LLAMA);
  await quantizeModel(model, { doubleQuant: false });
  const peft = getPeftModel(model, new LoraConfig({ targetModules: ['v_proj'], initLoraWeights: false }));
  const layer = peft.model.getSubmodule('model.layers.2.self_attn.v_proj') as LoraLinear;
  const base = layer.base_layer as Linear4bit;
  const x = Tensor.randn([5, 256]).requiresGrad_();
  const y = layer.call(x);
  const a = layer.lora_A.get('default')!.weight;
  const b = layer.lora_B.get('default')!.weight;
  const dense = base.denseWeight();
  const expected = noGrad(() => matmul(x, dense, { transposeB: true }).add(matmul(matmul(x, a, { transposeB: true }), b, { transposeB: true }).mul(layer.settings.get('default')!.scaling)));
  t.true(relativeErrorOf(y, expected) < 1e-5);
  y.sum().backward();
  const ones = Tensor.ones([5, 128]);
  const s = layer.settings.get('default')!.scaling;
  const expectedDx = noGrad(() => matmul(ones, dense).add(matmul(matmul(ones, b), a).mul(s)));
  t.true(relativeErrorOf(x.grad!, expectedDx) < 1e-5);
  t.truthy(a.grad);
});

test.serial('QLoRA fine-tuning lowers held-out loss like LoRA does', async (t) => {
  const lora = await houseStyleLosses(() => {});
  const qlora = await houseStyleLosses((model) => quantizeModel(model));
  t.true(qlora.after < 0.6 * qlora.before, `QLoRA ${qlora.before} -> ${qlora.after}`);
  t.true(Math.abs(qlora.after - lora.after) < 0.25 * lora.before, `QLoRA ${qlora.after} vs LoRA ${lora.after}`);
});

test.serial('a QLoRA adapter merges into the dequantized base exactly, or into the 4-bit base with requantization loss', async (t) => {
  manualSeed(5);
  const inputIds = Tensor.fromArray([[330, 284, 844, 264, 908, 539, 9, 79]], 'int32');
  const adapted = async () => {
    const model = await AutoModelForCausalLM.fromPretrained(TINY_CODE_LLAMA);
    await quantizeModel(model);
    manualSeed(5);
    const peft = getPeftModel(model, new LoraConfig({ targetModules: ['q_proj', 'v_proj'], initLoraWeights: false }));
    return { peft, logits: noGrad(() => peft.call({ inputIds }).logits) };
  };
  const exact = await adapted();
  const dequantized = exact.peft.mergeAndUnload({ dequantize: true });
  t.false(dequantized.modules().some((m) => m instanceof Linear4bit));
  const exactError = relativeErrorOf(noGrad(() => dequantized.call({ inputIds }).logits), exact.logits);
  t.true(exactError < 1e-5, `dequantized merge ${exactError}`);
  const lossy = await adapted();
  const requantized = lossy.peft.mergeAndUnload();
  t.true(requantized.getSubmodule('model.layers.0.self_attn.q_proj') instanceof Linear4bit);
  const lossyError = relativeErrorOf(noGrad(() => requantized.call({ inputIds }).logits), lossy.logits);
  t.true(lossyError > 10 * exactError, `requantized merge ${lossyError} loses precision`);
});

test.serial('a QLoRA adapter also merges into the original float weights, and the merged model saves in bf16', async (t) => {
  manualSeed(7);
  const quantized = await AutoModelForCausalLM.fromPretrained(TINY_CODE_LLAMA);
  await quantizeModel(quantized);
  const qlora = getPeftModel(quantized, new LoraConfig({ targetModules: ['q_proj', 'v_proj'], initLoraWeights: false }));
  const dir = await mkdtemp(join(tmpdir(), 'lorakit-qlora-adapter-'));
  await qlora.savePretrained(dir);
  const inputIds = Tensor.fromArray([[330, 284, 844, 264, 908, 539, 9, 79]], 'int32');
  const trained = noGrad(() => qlora.call({ inputIds }).logits);
  const onFloat = await PeftModel.fromPretrained(await AutoModelForCausalLM.fromPretrained(TINY_CODE_LLAMA), dir);
  const merged = onFloat.mergeAndUnload();
  const mergedLogits = noGrad(() => merged.call({ inputIds }).logits);
  const gap = relativeErrorOf(mergedLogits, trained);
  t.true(gap > 1e-4 && gap < 0.2, `the float merge differs from what was trained by the quantization error (${gap})`);
  const out = await mkdtemp(join(tmpdir(), 'lorakit-qlora-merged-'));
  await saveModel(merged, out, { dtype: 'BF16' });
  const reloaded = await AutoModelForCausalLM.fromPretrained(out);
  t.true(relativeErrorOf(noGrad(() => reloaded.call({ inputIds }).logits), mergedLogits) < 1e-2, 'bf16 rounding only');
});

/** The bitsandbytes model with each 4-bit weight replaced by its float32 dequantization: what QLoRA must compute. */
async function dequantized(dir: string) {
  const model = await AutoModelForCausalLM.fromPretrained(dir);
  for (const [name, module] of model.namedModules()) {
    if (!(module instanceof Linear4bit)) continue;
    const dense = new Linear(module.inFeatures, module.outFeatures, { bias: module.bias !== null });
    noGrad(() => {
      dense.weight.values.set(module.denseWeight().values);
      if (module.bias) dense.bias!.values.set(module.bias.values);
    });
    model.setSubmodule(name, dense);
  }
  return model;
}

// transformers + bitsandbytes checkpoints of the families with their own layer shapes: gemma2 (sandwich norms,
// soft caps) and phi3 (fused qkv_proj and gate_up_proj quantized whole).
for (const family of ['gemma2-nf4-dq', 'phi3-nf4']) {
  test.serial(`QLoRA all-linear on a bitsandbytes ${family} base: loss and LoRA gradients equal LoRA's on the dequantized float model`, async (t) => {
    const dir = `${MODEL_FIXTURES}/bnb-${family}`;
    const run = async (model: Awaited<ReturnType<typeof dequantized>>) => {
      manualSeed(4);
      const peft = getPeftModel(model, new LoraConfig({ r: 4, loraAlpha: 8, targetModules: 'all-linear', initLoraWeights: false }));
      const inputIds = Tensor.fromArray([[3, 17, 42, 9, 100, 5, 77, 31]], 'int32');
      const { loss } = peft.call({ inputIds, labels: inputIds });
      loss!.backward();
      return { loss: loss!.item(), grads: peft.namedParameters().filter(([, p]) => p.grad).map(([n, p]) => [n, p.grad!] as const) };
    };
    const quantized = await run(await AutoModelForCausalLM.fromPretrained(dir));
    const float = await run(await dequantized(dir));
    t.true(Math.abs(quantized.loss - float.loss) <= 1e-5, `loss ${quantized.loss} vs ${float.loss}`);
    t.deepEqual(quantized.grads.map(([n]) => n), float.grads.map(([n]) => n));
    t.true(quantized.grads.length >= 8);
    quantized.grads.forEach(([name, g], i) => t.true(relativeErrorOf(g, float.grads[i][1]) <= 1e-4, name));
  });
}
