/**
 * What the `lora` command writes, for PEFT and transformers + bitsandbytes to
 * load: an adapter from `lora add`, one from a short `lora train` (the adapter
 * that differs from the base), one from `lora add --target all-linear` on each
 * family added to the Llama decoder (qwen3 ... olmo2: PEFT must wrap
 * the same modules) and a 4-bit model from `lora quantize`. Each
 * gets lorakit's logits beside it, in the layouts of write-lorakit-adapters.ts
 * and write-lorakit-quantized.ts, so the same Python checks read them.
 *
 *   tsx conformance/write-lorakit-cli.ts conformance/out
 */
import { execFileSync } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { Tensor, noGrad } from '@lorakit/core';
import { SafetensorsFile, saveSafetensors, tensorRecord } from '@lorakit/core/io';
import { AutoModelForCausalLM } from '@lorakit/models';
import { PeftModel } from '@lorakit/adapters';

const MODEL = 'examples/models/tiny-code-llama';
const DATA = 'examples/data/house-style';
const out = process.argv[2] ?? 'conformance/out';

const lora = (...args: string[]) => execFileSync(process.execPath, ['packages/cli/bin/lora.mjs', ...args], { stdio: ['ignore', 'ignore', 'inherit'] });

// One left-padded batch: the padded position must not matter on either side.
const inputIds = Tensor.fromArray([[330, 284, 844, 264, 908, 539, 9, 79], [0, 0, 330, 284, 844, 79, 328, 200]], 'int64');
const attentionMask = Tensor.fromArray([[1, 1, 1, 1, 1, 1, 1, 1], [0, 0, 1, 1, 1, 1, 1, 1]], 'int64');

/** lorakit's logits for an adapter on `base`: the batch above, or for a model fixture its reference batch (its vocabulary is tiny). */
async function writeAdapterCase(name: string, adapterDir: string, base = MODEL): Promise<void> {
  let [ids, mask] = [inputIds, attentionMask];
  if (base !== MODEL) {
    const reference = await SafetensorsFile.open(join(base, 'reference.safetensors'));
    [ids, mask] = [await reference.read('input_ids'), await reference.read('attention_mask')];
    await reference.close();
  }
  const model = await PeftModel.fromPretrained(await AutoModelForCausalLM.fromPretrained(base), adapterDir);
  model.eval();
  const { logits } = noGrad(() => model.call({ inputIds: ids, attentionMask: mask }));
  await saveSafetensors(join(out, 'lorakit-adapters', name, 'lorakit.safetensors'), new Map([
    ['input_ids', tensorRecord(ids, 'I64')], ['attention_mask', tensorRecord(mask, 'I64')], ['logits', tensorRecord(logits, 'F32')],
    ['base', tensorRecord(Tensor.fromArray([...Buffer.from(base)], 'int32'), 'U8')],
  ]));
  console.log(`${name}: written`);
}

async function writeQuantizedCase(name: string, dir: string): Promise<void> {
  const model = await AutoModelForCausalLM.fromPretrained(dir);
  const ids = Tensor.fromArray([[330, 284, 844, 264, 908, 539, 9, 79]], 'int64');
  const logits = noGrad(() => model.call({ inputIds: ids }).logits);
  await saveSafetensors(join(dir, 'lorakit-logits.safetensors'), new Map([['input_ids', tensorRecord(ids, 'I64')], ['logits', tensorRecord(logits, 'F32')]]));
  console.log(`${name}: written`);
}

const adapters = join(out, 'lorakit-adapters');
await Promise.all(['cli-add', 'cli-train'].map((name) => mkdir(join(adapters, name), { recursive: true })));
await mkdir(join(out, 'lorakit-quantized'), { recursive: true });
lora('add', MODEL, '--target', 'q_proj,v_proj,down_proj', '--r', '8', '--alpha', '32', '--rslora', '--init', 'gaussian', '--out', join(adapters, 'cli-add', 'adapter'));
await writeAdapterCase('cli-add', join(adapters, 'cli-add', 'adapter'));
for (const family of ['qwen3', 'smollm3', 'granite', 'gemma', 'gemma2', 'gemma3_text', 'phi3', 'olmo2']) {
  const name = `cli-add-all-linear-${family}`;
  await mkdir(join(adapters, name), { recursive: true });
  lora('add', join('packages/models/fixtures', family), '--target', 'all-linear', '--r', '4', '--alpha', '8', '--out', join(adapters, name, 'adapter'));
  await writeAdapterCase(name, join(adapters, name, 'adapter'), join('packages/models/fixtures', family));
}
const run = join(out, 'lorakit-cli-train');
lora('train', MODEL, '--target', 'all-linear', '--r', '4', '--lr', '0.01', '--data', `${DATA}/train.jsonl`, '--max-steps', '4', '--batch-size', '2', '--out', run, '--progress', 'none');
execFileSync('cp', ['-r', join(run, 'adapter'), join(adapters, 'cli-train', 'adapter')]);
await writeAdapterCase('cli-train', join(adapters, 'cli-train', 'adapter'));
const quantized = join(out, 'lorakit-quantized', 'cli-quantize-nf4');
lora('quantize', MODEL, '--type', 'nf4', '--double-quant', '--out', quantized);
await writeQuantizedCase('cli-quantize-nf4', quantized);
