/**
 * Gradient checkpointing with LoRA: the base (embedding included) is frozen,
 * so no decoder layer's input requires grad, yet every layer must recompute
 * and give its LoRA weights the gradients of a run without checkpointing,
 * with the same lora_dropout masks.
 * NOTE: serial, because dropout draws from the global generator.
 */
import test from 'ava';
import { Tensor, defaultGenerator, init, manualSeed, noGrad } from '@lorakit/core';
import { AutoModelForCausalLM } from '@lorakit/models';
import { LoraConfig } from './config.ts';
import { getPeftModel, type PeftModel } from './peft-model.ts';
import { TINY_CODE_LLAMA, relativeError } from './testing.ts';

const inputIds = new Tensor(Int32Array.from({ length: 2 * 24 }, (_, i) => (i * 7919 + 13) % 4096), [2, 24]);

async function lora(): Promise<PeftModel> {
  manualSeed(0);
  const peft = getPeftModel(await AutoModelForCausalLM.fromPretrained(TINY_CODE_LLAMA), new LoraConfig({ targetModules: 'all-linear', r: 4, loraDropout: 0.1 }));
  noGrad(() => peft.loraLayers().forEach(([, layer]) => init.normal_(layer.lora_B.get('default')!.weight, 0, 0.02))); // so lora_A gets gradients too
  peft.train();
  return peft;
}

/** One forward and backward from `seed`: the loss, every LoRA gradient, and where the generator ends. */
function step(peft: PeftModel, seed: number) {
  peft.zeroGrad();
  manualSeed(seed);
  const { loss } = peft.call({ inputIds, labels: inputIds });
  loss!.backward();
  const grads = new Map(peft.trainableParameters().map(([name, p]) => [name, p.grad]));
  return { loss: loss!.item(), grads, after: defaultGenerator.getState() };
}

test.serial('LoRA gradients with gradient checkpointing equal those without it (dropout 0.1, frozen base)', async (t) => {
  const peft = await lora();
  t.false(peft.model.getSubmodule('model.embed_tokens').parameters()[0].requiresGrad, 'the embedding is frozen, so no layer input requires grad');
  const plain = step(peft, 1);
  peft.model.enableGradientCheckpointing();
  const checkpointed = step(peft, 1);
  t.is(plain.grads.size, 6 * 7 * 2);
  t.true(Math.abs(checkpointed.loss - plain.loss) <= 1e-6 * Math.abs(plain.loss), `${checkpointed.loss} vs ${plain.loss}`);
  for (const [name, grad] of plain.grads) {
    const mine = checkpointed.grads.get(name);
    t.truthy(mine, `${name} got no gradient with checkpointing`);
    if (grad === null || !mine) continue;
    t.true(relativeError(mine, grad) <= 1e-6, `${name}: ${relativeError(mine, grad)}`);
  }
  t.deepEqual(checkpointed.after, plain.after, 'checkpointing draws the same random numbers');
});

test.serial('the comparison sees the masks: other dropout masks move the gradients far beyond its tolerance', async (t) => {
  const peft = await lora();
  peft.model.enableGradientCheckpointing();
  const a = step(peft, 1);
  const b = step(peft, 2);
  const worst = Math.max(...[...a.grads].map(([name, grad]) => relativeError(b.grads.get(name)!, grad!)));
  t.true(worst > 1e-3, `${worst}`);
});
