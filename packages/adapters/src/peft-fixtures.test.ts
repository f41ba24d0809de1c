/**
 * tiny-code-llama against the references PEFT made (peft-fixtures/, by conformance/make_peft_fixtures.py):
 * adapter logits, merged weights and logits, re-saved tensors, LoRA gradients,
 * and PEFT's trainable-parameters line.
 */
import test from 'ava';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Tensor, noGrad } from '@lorakit/core';
import { AutoModelForCausalLM } from '@lorakit/models';
import { maxMaskedDiff } from '@lorakit/core/testing';
import { LoraConfig } from './config.ts';
import { PeftModel, getPeftModel } from './peft-model.ts';
import { PEFT_FIXTURES, TINY_CODE_LLAMA, maxAbs, relativeError, readAll } from './testing.ts';

const QV = `${PEFT_FIXTURES}/codellama_qv_r8`;
const TRAJECTORY = `${PEFT_FIXTURES}/codellama_train_trajectory`;

const io = await readAll(`${QV}/io.safetensors`);
const inputIds = io.get('input_ids')!;
const attentionMask = io.get('attention_mask')!;

test('a PEFT adapter reproduces PEFT logits to 1e-4', async (t) => {
  const peft = await PeftModel.fromPretrained(await AutoModelForCausalLM.fromPretrained(TINY_CODE_LLAMA), `${QV}/adapter`);
  const { logits } = noGrad(() => peft.call({ inputIds, attentionMask }));
  t.true(maxMaskedDiff(logits, io.get('adapter_logits')!, attentionMask) <= 1e-4);
  t.true(maxMaskedDiff(logits, io.get('base_logits')!, attentionMask) > 0.1, 'the adapter changes the output');
  t.is(peft.numParameters({ trainableOnly: true }), 0, 'loaded for inference: frozen');
});

test('mergeAndUnload reproduces PEFT merged weights to 1e-5 and merged logits to 1e-4', async (t) => {
  const peft = await PeftModel.fromPretrained(await AutoModelForCausalLM.fromPretrained(TINY_CODE_LLAMA), `${QV}/adapter`);
  const merged = peft.mergeAndUnload();
  const state = merged.stateDict();
  const reference = await readAll(`${QV}/merged_subset.safetensors`);
  for (const [name, expected] of reference) t.true(maxAbs(state.get(name)!, expected) <= 1e-5, name);
  t.is(merged.getSubmodule('model.layers.0.self_attn.q_proj').constructor.name, 'Linear');
  const { logits } = noGrad(() => merged.call({ inputIds, attentionMask }));
  t.true(maxMaskedDiff(logits, io.get('merged_logits')!, attentionMask) <= 1e-4);
});

test('re-saving a loaded adapter writes the same tensors under the same keys', async (t) => {
  const peft = await PeftModel.fromPretrained(await AutoModelForCausalLM.fromPretrained(TINY_CODE_LLAMA), `${QV}/adapter`);
  const dir = await mkdtemp(join(tmpdir(), 'lorakit-resave-'));
  await peft.savePretrained(dir);
  const original = await readAll(`${QV}/adapter/adapter_model.safetensors`);
  const resaved = await readAll(join(dir, 'adapter_model.safetensors'));
  t.deepEqual([...resaved.keys()].sort(), [...original.keys()].sort());
  for (const [name, tensor] of original) t.deepEqual(resaved.get(name)!.toArray(), tensor.toArray(), name);
});

test('LoRA gradients on the first batch match PEFT to 1e-3 relative', async (t) => {
  const peft = await PeftModel.fromPretrained(await AutoModelForCausalLM.fromPretrained(TINY_CODE_LLAMA), `${TRAJECTORY}/adapter_init`, { isTrainable: true });
  const batches = await readAll(`${TRAJECTORY}/batches.safetensors`);
  const { loss } = peft.call({ inputIds: batches.get('b0_input_ids')!, attentionMask: batches.get('b0_attention_mask')!, labels: batches.get('b0_labels')! });
  loss!.backward();
  const grads = await readAll(`${TRAJECTORY}/grads_step0.safetensors`);
  const parameters = new Map(peft.namedParameters());
  t.is(grads.size, 24);
  for (const [name, expected] of grads) {
    const grad = parameters.get(name)?.grad;
    t.truthy(grad, `${name} has a gradient`);
    t.true(relativeError(grad!, expected) <= 1e-3, `${name}: relative error ${relativeError(grad!, expected)}`);
  }
  t.true(peft.namedParameters().every(([name, p]) => (p.grad !== null) === name.includes('.lora_')), 'only LoRA parameters get gradients');
});

test('getPeftModel freezes all but the adapter and prints PEFT\'s trainable line', async (t) => {
  const peft = getPeftModel(await AutoModelForCausalLM.fromPretrained(TINY_CODE_LLAMA), new LoraConfig({ r: 8, loraAlpha: 16, targetModules: ['q_proj', 'v_proj'] }));
  const meta = JSON.parse(await readFile(`${QV}/meta.json`, 'utf8')) as { trainable_line: string };
  t.is(peft.trainableParametersSummary(), meta.trainable_line);
  t.true(peft.trainableParameters().every(([name]) => /\.lora_[AB]\.default\.weight$/.test(name)));
  t.is(peft.trainableParameters().length, 24);
});
