/**
 * Every architecture against transformers: logits on unpadded positions
 * (≤ 1e-4), the causal-LM loss (≤ 1e-5) and 20 greedy tokens (exact), on
 * tiny random checkpoints made by conformance/make_model_fixtures.py.
 */
import test from 'ava';
import { Tensor, noGrad } from '@lorakit/core';
import { SafetensorsFile } from '@lorakit/core/io';
import { AutoModelForCausalLM } from './auto.ts';
import { generate } from './generation.ts';
import { FIXTURES, maxMaskedDiff } from './testing.ts';

const CASES = ['llama', 'llama-rope-linear', 'llama-rope-llama3', 'llama-bf16-tied', 'mistral', 'qwen2', 'gpt2', 'llama-rope-linear-bf16', 'mistral-bf16', 'qwen2-bf16', 'gpt2-bf16', 'qwen3', 'qwen3-bf16', 'smollm3', 'smollm3-bf16', 'granite', 'granite-bf16', 'gemma', 'gemma-bf16', 'gemma2', 'gemma2-bf16', 'gemma3_text', 'gemma3_text-bf16', 'gemma3', 'phi3', 'phi3-bf16', 'olmo2', 'olmo2-bf16', 'qwen3-sliding'];

for (const name of CASES) {
  test(`${name} matches transformers: logits, loss and greedy generation`, async (t) => {
    const model = await AutoModelForCausalLM.fromPretrained(`${FIXTURES}/${name}`);
    const ref = await SafetensorsFile.open(`${FIXTURES}/${name}/reference.safetensors`);
    const [inputIds, attentionMask, logits, loss, greedy] = await Promise.all(['input_ids', 'attention_mask', 'logits', 'loss', 'greedy'].map((n) => ref.read(n)));
    await ref.close();
    const mask = attentionMask.toArray();
    const labels = new Tensor(BigInt64Array.from(inputIds.toArray(), (id, i) => BigInt(mask[i] ? id : -100)), inputIds.shape);
    const out = noGrad(() => model.call({ inputIds, attentionMask, labels }));
    t.true(maxMaskedDiff(out.logits, logits, attentionMask) <= 1e-4, `logits differ by ${maxMaskedDiff(out.logits, logits, attentionMask)}`);
    t.true(Math.abs(out.loss!.item() - loss.item()) <= 1e-5, `loss ${out.loss!.item()} vs ${loss.item()}`);
    const lossAlone = noGrad(() => model.call({ inputIds, attentionMask, labels, logitsToKeep: 0 })); // the head fused with the loss
    t.true(Math.abs(lossAlone.loss!.item() - loss.item()) <= 1e-5, `loss alone ${lossAlone.loss!.item()} vs ${loss.item()}`);
    t.is(lossAlone.logits.shape[1], 0);
    const prompt = inputIds.toArray().slice(0, 5);
    t.deepEqual(generate(model, [prompt], { maxNewTokens: 20 })[0], greedy.toArray());
  });
}
