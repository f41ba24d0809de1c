/**
 * Adapters made by PEFT across LoraConfig's options (conformance/make_adapter_fixtures.py):
 * each loads onto its model and gives PEFT's logits (1e-4), loss (1e-5),
 * parameter gradients (1e-3 relative) and merged logits (1e-4); its greedy
 * continuation (exact) and three AdamW steps (losses 1e-5, end point 1e-4).
 */
import test from 'ava';
import { readFile, readdir } from 'node:fs/promises';
import { Tensor, noGrad } from '@lorakit/core';
import { AdamW } from '@lorakit/core/optim';
import { SafetensorsFile } from '@lorakit/core/io';
import { maxMaskedDiff } from '@lorakit/core/testing';
import { AutoModelForCausalLM, generate } from '@lorakit/models';
import { PeftModel } from './peft-model.ts';
import { ADAPTER_FIXTURES, MODEL_FIXTURES, maxAbs, relativeError } from './testing.ts';

const cases = (await readdir(ADAPTER_FIXTURES, { withFileTypes: true })).filter((e) => e.isDirectory()).map((e) => e.name);

/** A case's adapter on its base model (trainable, eval mode: no dropout) and PEFT's reference tensors. */
async function load(name: string): Promise<{ peft: PeftModel; ref: Map<string, Tensor>; labels: Tensor }> {
  const dir = `${ADAPTER_FIXTURES}/${name}`;
  const { base } = JSON.parse(await readFile(`${dir}/case.json`, 'utf8')) as { base: string };
  const reference = await SafetensorsFile.open(`${dir}/reference.safetensors`);
  const ref = new Map<string, Tensor>();
  for (const key of reference.names()) ref.set(key, await reference.read(key));
  await reference.close();
  const peft = await PeftModel.fromPretrained(await AutoModelForCausalLM.fromPretrained(`${MODEL_FIXTURES}/${base}`), `${dir}/adapter`, { isTrainable: true });
  peft.eval();
  const [inputIds, mask] = [ref.get('input_ids')!, ref.get('attention_mask')!.toArray()];
  const labels = new Tensor(Int32Array.from(inputIds.toArray(), (id, i) => (mask[i] ? id : -100)), inputIds.shape);
  return { peft, ref, labels };
}

for (const name of cases) {
  test(`PEFT adapter "${name}" matches PEFT: logits, loss, gradients, merged logits`, async (t) => {
    const { peft, ref, labels } = await load(name);
    const [inputIds, attentionMask] = [ref.get('input_ids')!, ref.get('attention_mask')!];
    const { logits, loss } = peft.call({ inputIds, attentionMask, labels });
    t.true(maxMaskedDiff(logits, ref.get('logits')!, attentionMask) <= 1e-4, `logits differ by ${maxMaskedDiff(logits, ref.get('logits')!, attentionMask)}`);
    t.true(Math.abs(loss!.item() - ref.get('loss')!.item()) <= 1e-5, 'loss');

    loss!.backward();
    const expectedGrads = [...ref.keys()].filter((k) => k.startsWith('grad.')).map((k) => k.slice(5));
    const trainable = peft.trainableParameters().map(([n]) => n);
    t.deepEqual([...trainable].sort(), [...expectedGrads].sort(), 'the same parameters train as in PEFT');
    const parameters = new Map(peft.namedParameters());
    for (const key of expectedGrads) {
      const error = relativeError(parameters.get(key)!.grad!, ref.get(`grad.${key}`)!);
      t.true(error <= 1e-3, `${key}: relative error ${error}`);
    }

    const merged = peft.mergeAndUnload();
    const mergedLogits = noGrad(() => merged.call({ inputIds, attentionMask }).logits);
    t.true(maxMaskedDiff(mergedLogits, ref.get('merged_logits')!, attentionMask) <= 1e-4, 'merged logits');
  });
}

for (const name of cases) {
  test(`PEFT adapter "${name}" matches PEFT: greedy continuation and three AdamW steps`, async (t) => {
    const { peft, ref, labels } = await load(name);
    const [inputIds, attentionMask] = [ref.get('input_ids')!, ref.get('attention_mask')!];
    const prompt = inputIds.toArray().slice(0, 5);
    t.deepEqual(noGrad(() => generate(peft, [prompt], { maxNewTokens: 8 }))[0], ref.get('greedy')!.toArray());

    const trainable = peft.trainableParameters();
    const optimizer = new AdamW(trainable.map(([, p]) => p), { lr: 1e-3, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0.01 });
    const losses = ref.get('adamw_losses')!.toArray();
    for (const [step, expected] of losses.entries()) {
      const { loss } = peft.call({ inputIds, attentionMask, labels });
      t.true(Math.abs(loss!.item() - expected) <= 1e-5, `step ${step + 1}: loss ${loss!.item()} vs ${expected}`);
      loss!.backward();
      optimizer.step();
      optimizer.zeroGrad();
    }
    for (const [key, parameter] of trainable) {
      const error = maxAbs(parameter, ref.get(`adamw.${key}`)!);
      t.true(error <= 1e-4, `${key} after ${losses.length} steps: max abs error ${error}`);
    }
  });
}
