/**
 * quantizeModel: the QLoRA base. Every Linear of the model becomes a frozen
 * Linear4bit in bitsandbytes' format, except the modules to skip (the output
 * head by default, as transformers keeps it).
 *
 *   await quantizeModel(model, { quantType: 'nf4', doubleQuant: true });
 *   const peft = getPeftModel(model, new LoraConfig({ targetModules: ['q_proj', 'v_proj'] }));
 *
 * quantizeModel8bit: the same with LLM.int8's Linear8bit (transformers' `load_in_8bit`), a base that computes
 * in int8, for speed.
 */
import { noGrad } from '@lorakit/core';
import { Linear, Linear4bit, Linear8bit, LLM_INT8_THRESHOLD } from '@lorakit/core/nn';
import { quantizeParallel, type QuantType } from '@lorakit/core/quantization';
import { quote } from '@lorakit/core/io';
import type { CausalLM } from '@lorakit/models';

export interface QuantizeOptions {
  quantType?: QuantType;
  blockSize?: number;
  doubleQuant?: boolean;
  /** Names (or dotted suffixes) of linear layers to keep in float (default: the output head). */
  skipModules?: string[];
  /** Worker threads (default: every core). */
  threads?: number;
}

/** Returns the names of the layers it quantized; the work runs on every core (worker threads). */
export async function quantizeModel(model: CausalLM, { quantType = 'nf4', blockSize = 64, doubleQuant = true, skipModules, threads }: QuantizeOptions = {}): Promise<string[]> {
  if (!(Number.isInteger(Math.log2(blockSize)) && blockSize >= 16 && blockSize <= 4096)) throw new Error(`quantizeModel: blockSize must be a power of two from 16 to 4096, got ${blockSize}`);
  if (!['nf4', 'fp4'].includes(quantType)) throw new Error(`quantizeModel: quantType must be "nf4" or "fp4", got ${quote(quantType)}`);
  const targets = quantizedLinears(model, skipModules);
  const quantized = await quantizeParallel(targets.map(([, linear]) => linear.weight.values as Float32Array), quantType, blockSize, doubleQuant, threads);
  noGrad(() => {
    targets.forEach(([name, linear], i) => {
      model.setSubmodule(name, Linear4bit.fromQuantized(linear.inFeatures, linear.outFeatures, { quantType, blockSize, doubleQuant }, quantized[i], linear.bias));
    });
  });
  return targets.map(([name]) => name);
}

/** The model's Linear layers but those named in skipModules (default: the output head), by name. */
function quantizedLinears(model: CausalLM, skipModules: string[] | undefined): Array<[string, Linear]> {
  const skip = skipModules ?? [model.outputEmbeddingsName()];
  return model.namedModules().filter((entry): entry is [string, Linear] => entry[1] instanceof Linear && !skip.some((s) => entry[0] === s || entry[0].endsWith(`.${s}`)));
}

export interface Quantize8bitOptions {
  /** Input columns with any |x| at or above this are multiplied in float (bitsandbytes' llm_int8_threshold, 6); 0: none. */
  threshold?: number;
  skipModules?: string[];
}

/** Returns the names of the layers it quantized. */
export function quantizeModel8bit(model: CausalLM, { threshold = LLM_INT8_THRESHOLD, skipModules }: Quantize8bitOptions = {}): string[] {
  if (!(Number.isFinite(threshold) && threshold >= 0)) throw new Error(`quantizeModel8bit: threshold must be a number >= 0, got ${quote(threshold)}`);
  const targets = quantizedLinears(model, skipModules);
  noGrad(() => {
    for (const [name, linear] of targets) model.setSubmodule(name, Linear8bit.fromWeight(linear.weight, linear.bias, { threshold }));
  });
  return targets.map(([name]) => name);
}
