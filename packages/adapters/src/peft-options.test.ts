/**
 * Adapters made by PEFT across LoraConfig's options (conformance/make_adapter_fixtures.py):
 * each loads onto its model and gives PEFT's logits (1e-4), loss (1e-5),
 * parameter gradients (1e-3 relative) and merged logits (1e-4).
 */
import test from 'ava';
import { readFile, readdir } from 'node:fs/promises';
import { SafetensorsFile, Tensor, noGrad } from '@lorakit/core';
import { maxMaskedDiff } from '@lorakit/core/testing';
import { AutoModelForCausalLM } from '@lorakit/models';
import { PeftModel } from './peft-model.ts';
import { ADAPTER_FIXTURES, MODEL_FIXTURES, relativeError } from './testing.ts';

const cases = (await readdir(ADAPTER_FIXTURES, { withFileTypes: true })).filter((e) => e.isDirectory()).map((e) => e.name);

for (const name of cases) {
  test(`PEFT adapter "${name}" matches PEFT: logits, loss, gradients, merged logits`, async (t) => {
    const dir = `${ADAPTER_FIXTURES}/${name}`;
    const { base } = JSON.parse(await readFile(`${dir}/case.json`, 'utf8')) as { base: string };
    const reference = await SafetensorsFile.open(`${dir}/reference.safetensors`);
    const ref = new Map<string, Tensor>();
    for (const key of reference.names()) ref.set(key, await reference.read(key));
    await reference.close();

    const peft = await PeftModel.fromPretrained(await AutoModelForCausalLM.fromPretrained(`${MODEL_FIXTURES}/${base}`), `${dir}/adapter`, { isTrainable: true });
    peft.eval();
    const inputIds = ref.get('input_ids')!;
    const attentionMask = ref.get('attention_mask')!;
    const mask = attentionMask.toArray();
    const labels = new Tensor(Int32Array.from(inputIds.toArray(), (id, i) => (mask[i] ? id : -100)), inputIds.shape);
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
