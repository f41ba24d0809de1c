/**
 * Will another loader read this adapter as lorakit and PEFT do?
 *
 *   vLLM rejects DoRA, modules_to_save (except classifier/score heads), biases,
 *   and ranks above its max_lora_rank (16 unless raised).
 *   llama.cpp's convert_lora_to_gguf.py reads lora_alpha and each tensor's rank,
 *   so it assumes scaling = lora_alpha / r: rsLoRA and alpha_pattern are misread,
 *   DoRA magnitudes and extra tensors are not converted.
 *
 * bakeScalingForLlamaCpp rewrites an adapter so that lora_alpha / r is right
 * everywhere, by folding the difference into B.
 */
import { Tensor } from '@lorakit/core';
import { FileFormatError } from '@lorakit/core/io';
import { readAdapter, savedKeyOf, writeAdapter, configToJson } from './peft-format.ts';
import { resolve } from 'node:path';

export type AdapterTarget = 'vllm' | 'llama.cpp';

export interface CompatibilityProblem {
  code: string;
  message: string;
  /** What to do about it, when something can be done. */
  fix?: string;
}

export interface CompatibilityReport {
  target: AdapterTarget;
  compatible: boolean;
  problems: CompatibilityProblem[];
}

const VLLM_DEFAULT_MAX_RANK = 16;
const VLLM_SAVABLE_HEADS = /(^|\.)(classifier|score)$/;

/** Module name (without base_model.model.) -> its rank, from the lora_A shapes. */
function ranksByModule(tensors: Map<string, Tensor>): Map<string, number> {
  const ranks = new Map<string, number>();
  for (const [key, t] of tensors) {
    const match = /^base_model\.model\.(.+)\.lora_A\.weight$/.exec(key);
    if (match) ranks.set(match[1], t.shape[0]);
  }
  return ranks;
}

export async function checkAdapterCompatibility(dir: string, target: AdapterTarget, { maxLoraRank = VLLM_DEFAULT_MAX_RANK } = {}): Promise<CompatibilityReport> {
  const { config, tensors } = await readAdapter(dir, () => {});
  const ranks = ranksByModule(tensors);
  const problems: CompatibilityProblem[] = [];
  const extra = [...tensors.keys()].filter((k) => !/\.lora_[AB]\.weight$/.test(k) && !k.endsWith('.lora_magnitude_vector'));
  if (config.useDora) problems.push({ code: 'dora', message: `DoRA (use_dora) is not supported by ${target}`, fix: 'merge the adapter into the model instead (lora merge)' });
  if (target === 'vllm') {
    const heads = (config.modulesToSave ?? []).filter((m) => !VLLM_SAVABLE_HEADS.test(m));
    if (heads.length > 0) problems.push({ code: 'modules-to-save', message: `modules_to_save (${heads.join(', ')}) is not supported by vLLM`, fix: 'merge the adapter into the model instead' });
    if (config.bias !== 'none') problems.push({ code: 'bias', message: `bias "${config.bias}" is not supported by vLLM (only "none")` });
    const maxRank = Math.max(...ranks.values());
    if (maxRank > maxLoraRank) problems.push({ code: 'rank', message: `rank ${maxRank} is above vLLM's max_lora_rank ${maxLoraRank}`, fix: `start vLLM with --max-lora-rank ${[8, 16, 32, 64, 128, 256, 320, 512].find((r) => r >= maxRank) ?? maxRank}` });
  } else {
    if (config.useRslora) problems.push({ code: 'rslora', message: 'llama.cpp assumes scaling lora_alpha / r; this rsLoRA adapter uses lora_alpha / √r', fix: 'bake the scaling into B (bakeScalingForLlamaCpp, or lora export --for llama.cpp)' });
    if (Object.keys(config.alphaPattern).length > 0) problems.push({ code: 'alpha-pattern', message: 'llama.cpp reads one lora_alpha; alpha_pattern is ignored', fix: 'bake the scaling into B (bakeScalingForLlamaCpp)' });
    const unsupported = extra.filter((k) => !k.endsWith('.lora_magnitude_vector'));
    if (unsupported.length > 0) problems.push({ code: 'extra-tensors', message: `${unsupported.length} tensors besides lora_A/lora_B (modules_to_save or biases) are not converted, e.g. ${unsupported[0]}`, fix: 'merge the adapter into the model instead' });
  }
  return { target, compatible: problems.length === 0, problems };
}

/** Write a copy of the adapter whose B matrices carry the scaling llama.cpp will not apply. */
export async function bakeScalingForLlamaCpp(dir: string, outDir: string): Promise<void> {
  if (resolve(dir) === resolve(outDir)) throw new FileFormatError('SameFolder', outDir, 'is the input adapter; write the baked copy somewhere else');
  const { config, tensors } = await readAdapter(dir, () => {});
  if (config.useDora) throw new FileFormatError('UnsupportedAdapterFeature', dir, 'a DoRA adapter cannot be expressed for llama.cpp; merge it instead');
  const baked = new Map(tensors);
  for (const [module, r] of ranksByModule(tensors)) {
    const trueScaling = config.scaling(module);
    const assumed = config.loraAlpha / r;
    const key = savedKeyOf(module, 'lora_B.weight');
    baked.set(key, tensors.get(key)!.mul(trueScaling / assumed));
  }
  const plain = config.with({ useRslora: false, alphaPattern: {} });
  await writeAdapter(outDir, configToJson(plain, plain.targetModules ?? []), baked);
}
