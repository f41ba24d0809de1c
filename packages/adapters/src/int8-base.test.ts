/** LoRA over an LLM.int8 base: the fused kernel with int8 products, the low-rank path in float32. */
import test from 'ava';
import { existsSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Tensor, manualSeed, noGrad } from '@lorakit/core';
import { Linear8bit } from '@lorakit/core/nn';
import { matmul } from '@lorakit/core/ops';
import { relativeErrorOf } from '@lorakit/core/testing';
import { AutoModelForCausalLM, saveModel } from '@lorakit/models';
import { LoraConfig } from './config.ts';
import { getPeftModel } from './peft-model.ts';
import { LoraLinear } from './lora-linear.ts';
import { quantizeModel8bit } from './quantize-model.ts';
import { TINY_CODE_LLAMA, houseStyleLosses } from './testing.ts';

test.serial('quantizeModel8bit turns every Linear but the head into Linear8bit, and LoRA wraps them', async (t) => {
  const model = await AutoModelForCausalLM.fromPretrained(TINY_CODE_LLAMA);
  t.is(quantizeModel8bit(model).length, 6 * 7);
  t.is(model.getSubmodule('lm_head').constructor.name, 'Linear');
  const peft = getPeftModel(model, new LoraConfig({ r: 8, loraAlpha: 16, targetModules: 'all-linear' }));
  t.true((peft.model.getSubmodule('model.layers.0.mlp.down_proj') as LoraLinear).base_layer instanceof Linear8bit);
  t.throws(() => quantizeModel8bit(model, { threshold: -1 }), { message: /threshold must be a number >= 0, got -1/ });
  const out = join(await mkdtemp(join(tmpdir(), 'lorakit-int8-save-')), 'model');
  await t.throwsAsync(saveModel(model, out), { message: /8-bit base .* is not saved.* merge with \{ dequantize: true \}/ });
  t.false(existsSync(out), 'nothing written');
  t.false(peft.mergeAndUnload({ dequantize: true }).modules().some((m) => m instanceof Linear8bit));
});

test.serial('on an 8-bit base the LoRA gradients are exact given the same upstream gradient; outputs and input gradients carry int8 rounding', async (t) => {
  manualSeed(3);
  const model = await AutoModelForCausalLM.fromPretrained(TINY_CODE_LLAMA);
  quantizeModel8bit(model);
  const peft = getPeftModel(model, new LoraConfig({ targetModules: ['v_proj'], initLoraWeights: false }));
  const layer = peft.model.getSubmodule('model.layers.2.self_attn.v_proj') as LoraLinear;
  const dense = (layer.base_layer as Linear8bit).denseWeight();
  const [a, b] = [layer.lora_A.get('default')!.weight, layer.lora_B.get('default')!.weight];
  const s = layer.settings.get('default')!.scaling;
  for (const rows of [5, 2048]) { // the low-rank term kept apart (no merged weight over an 8-bit base) at any size
    const x = Tensor.randn([rows, 256]).requiresGrad_();
    const y = layer.call(x);
    const h = noGrad(() => matmul(x, a, { transposeB: true })); // [N, r]
    const expected = noGrad(() => matmul(x, dense, { transposeB: true }).add(matmul(h, b, { transposeB: true }).mul(s)));
    const error = relativeErrorOf(y, expected);
    t.true(error < 0.01 && error > 1e-6, `forward ${error}`);
    const dy = Tensor.randn([rows, 128]);
    for (const p of [a, b]) p.grad = null;
    y.backward(dy);
    const dA = noGrad(() => matmul(matmul(dy, b).mul(s), x, { transposeA: true }));
    const dB = noGrad(() => matmul(dy, h, { transposeA: true }).mul(s));
    t.true(relativeErrorOf(a.grad!, dA) < 1e-5 && relativeErrorOf(b.grad!, dB) < 1e-5, `dA ${relativeErrorOf(a.grad!, dA)}, dB ${relativeErrorOf(b.grad!, dB)}`);
    const dx = noGrad(() => matmul(dy, dense).add(matmul(matmul(dy, b), a).mul(s)));
    t.true(relativeErrorOf(x.grad!, dx) < 0.01, `input gradient ${relativeErrorOf(x.grad!, dx)}`);
    t.log(`${rows} rows: relative error of the forward ${error.toExponential(2)}, of the input gradient ${relativeErrorOf(x.grad!, dx).toExponential(2)}`);
  }
});

test.serial('LoRA fine-tuning on an 8-bit base lowers held-out loss as on the float base', async (t) => {
  const float = await houseStyleLosses(() => {});
  const int8 = await houseStyleLosses((model) => quantizeModel8bit(model));
  t.log(`held-out loss before, after: float ${float.before}, ${float.after}; int8 ${int8.before}, ${int8.after}`);
  t.true(Math.abs(int8.before - float.before) < 0.01 * float.before, `before training: int8 ${int8.before} vs float ${float.before}`);
  t.true(int8.after < 0.6 * int8.before, `int8 ${int8.before} -> ${int8.after}`);
  t.true(Math.abs(int8.after - float.after) < 0.02 * float.after, `after: int8 ${int8.after} vs float ${float.after}`);
});
