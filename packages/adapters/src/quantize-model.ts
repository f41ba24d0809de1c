/**
 * quantizeModel: the QLoRA base. Every Linear of the model becomes a frozen
 * Linear4bit in bitsandbytes' format, except the modules to skip (the output
 * head by default, as transformers keeps it).
 *
 *   await quantizeModel(model, { quantType: 'nf4', doubleQuant: true });
 *   const peft = getPeftModel(model, new LoraConfig({ targetModules: ['q_proj', 'v_proj'] }));
 */
import { noGrad } from '@lorakit/core';
import { Linear, Linear4bit } from '@lorakit/core/nn';
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
  const skip = skipModules ?? [model.outputEmbeddingsName()];
  const targets = model.namedModules().filter(([name, m]) => m instanceof Linear && !skip.some((s) => name === s || name.endsWith(`.${s}`)));
  const linears = targets.map(([, m]) => m as Linear);
  const quantized = await quantizeParallel(linears.map((l) => l.weight.values as Float32Array), quantType, blockSize, doubleQuant, threads);
  noGrad(() => {
    targets.forEach(([name], i) => {
      const linear = linears[i];
      model.setSubmodule(name, Linear4bit.fromQuantized(linear.inFeatures, linear.outFeatures, { quantType, blockSize, doubleQuant }, quantized[i], linear.bias));
    });
  });
  return targets.map(([name]) => name);
}
