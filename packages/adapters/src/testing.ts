/** Paths and helpers shared by this package's tests. */
import { cp, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { manualSeed, type Tensor } from '@lorakit/core';
import { SafetensorsFile, saveSafetensors, tensorRecord } from '@lorakit/core/io';
import { AutoModelForCausalLM, AutoTokenizer, Trainer, loadDataset, type CausalLM } from '@lorakit/models';
import { LoraConfig } from './config.ts';
import { getPeftModel } from './peft-model.ts';

export const REPO = fileURLToPath(new URL('../../../', import.meta.url));
export const TINY_CODE_LLAMA = `${REPO}examples/models/tiny-code-llama`;
export const MODEL_FIXTURES = `${REPO}packages/models/fixtures`;
export const PEFT_FIXTURES = `${REPO}packages/adapters/peft-fixtures`;
export const ADAPTER_FIXTURES = `${REPO}packages/adapters/fixtures`;

export { relativeErrorOf as relativeError } from '@lorakit/core/testing';

export function maxAbs(a: Tensor, b: Tensor): number {
  let worst = a.numel === b.numel ? 0 : Infinity;
  for (let i = 0; i < b.numel; i++) worst = Math.max(worst, Math.abs(a.values[i] - b.values[i]));
  return worst;
}

const ADAPTER = `${PEFT_FIXTURES}/codellama_qv_r8/adapter`;

/** A copy of PEFT's q/v adapter for tiny-code-llama, with its config or tensors edited. */
export async function copyAdapter(edit: { config?: (c: Record<string, unknown>) => void; tensors?: (t: Map<string, Tensor>) => void } = {}): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'lorakit-adapter-'));
  await cp(ADAPTER, dir, { recursive: true });
  if (edit.config) {
    const config = JSON.parse(await readFile(join(dir, 'adapter_config.json'), 'utf8'));
    edit.config(config);
    await writeFile(join(dir, 'adapter_config.json'), JSON.stringify(config));
  }
  if (edit.tensors) {
    const file = await SafetensorsFile.open(join(ADAPTER, 'adapter_model.safetensors'));
    const tensors = new Map<string, Tensor>();
    for (const name of file.names()) tensors.set(name, await file.read(name));
    await file.close();
    edit.tensors(tensors);
    await saveSafetensors(join(dir, 'adapter_model.safetensors'), new Map([...tensors].map(([k, v]) => [k, tensorRecord(v, 'F32')])));
  }
  return dir;
}

/** Every tensor of a safetensors file, by name. */
export async function readAll(path: string): Promise<Map<string, Tensor>> {
  const file = await SafetensorsFile.open(path);
  const tensors = new Map<string, Tensor>();
  for (const name of file.names()) tensors.set(name, await file.read(name));
  await file.close();
  return tensors;
}

/**
 * tiny-code-llama's held-out house-style loss before and after 16 steps of LoRA on q_proj and v_proj (64 training
 * examples, batch 8), its base first changed by `prepareBase` (quantized, for instance).
 */
export async function houseStyleLosses(prepareBase: (model: CausalLM) => unknown): Promise<{ before: number; after: number }> {
  const tokenizer = await AutoTokenizer.fromPretrained(TINY_CODE_LLAMA);
  const train = (await loadDataset(`${REPO}examples/data/house-style/train.jsonl`, tokenizer, { maxLength: 48 })).slice(0, 64);
  const evalSet = await loadDataset(`${REPO}examples/data/house-style/eval.jsonl`, tokenizer, { maxLength: 48 });
  manualSeed(0);
  const model = await AutoModelForCausalLM.fromPretrained(TINY_CODE_LLAMA);
  await prepareBase(model);
  const peft = getPeftModel(model, new LoraConfig({ r: 8, loraAlpha: 16, targetModules: ['q_proj', 'v_proj'] }));
  const trainer = new Trainer(peft, { outputDir: await mkdtemp(join(tmpdir(), 'lorakit-house-style-')), train, eval: evalSet, padTokenId: 1, maxSteps: 16, batchSize: 8, learningRate: 3e-3, progress: 'none', handleInterrupts: false });
  const before = trainer.evaluate();
  return { before, after: (await trainer.train()).evalLoss! };
}
