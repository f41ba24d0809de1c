/**
 * Checkpoints saved already quantized by bitsandbytes (4-bit): config.json's
 * quantization_config, and per linear layer the keys weight (packed codes),
 * weight.absmax, weight.quant_map, weight.nested_absmax, weight.nested_quant_map
 * and weight.quant_state.bitsandbytes__nf4 (or __fp4). Such layers load as
 * Linear4bit; the rest of the model loads as usual.
 */
import type { Tensor } from '@lorakit/core';
import { Linear, Linear4bit } from '@lorakit/core/nn';
import { Checkpoint, FileFormatError, quote } from '@lorakit/core/io';
import type { QuantType } from '@lorakit/core/quantization';
import type { CausalLM } from './causal-lm.ts';

export interface BnbQuantizationConfig {
  quant_method: 'bitsandbytes';
  load_in_4bit: boolean;
  bnb_4bit_quant_type: QuantType;
  bnb_4bit_use_double_quant: boolean;
  bnb_4bit_compute_dtype?: string;
  llm_int8_skip_modules?: string[] | null;
}

const SUFFIXES = ['', '.absmax', '.nested_absmax', '.nested_quant_map', '.quant_map'];

export function checkQuantizationConfig(value: unknown, file: string): BnbQuantizationConfig | null {
  if (value === undefined || value === null) return null;
  const q = value as Record<string, unknown>;
  if (q.quant_method !== 'bitsandbytes') throw new FileFormatError('UnsupportedQuantization', file, `quantization_config.quant_method ${quote(String(q.quant_method))} is not supported; lorakit reads bitsandbytes 4-bit checkpoints`);
  if (q.load_in_4bit !== true) throw new FileFormatError('UnsupportedQuantization', file, 'only 4-bit bitsandbytes checkpoints (load_in_4bit) are supported, not 8-bit');
  return { quant_method: 'bitsandbytes', load_in_4bit: true, bnb_4bit_quant_type: (q.bnb_4bit_quant_type as QuantType) ?? 'fp4', bnb_4bit_use_double_quant: q.bnb_4bit_use_double_quant === true, bnb_4bit_compute_dtype: String(q.bnb_4bit_compute_dtype ?? 'float32'), llm_int8_skip_modules: (q.llm_int8_skip_modules as string[] | null) ?? null };
}

/** Replace each Linear stored quantized in the checkpoint by a loaded Linear4bit; returns the keys it used. */
export async function loadQuantizedLayers(model: CausalLM, checkpoint: Checkpoint): Promise<Set<string>> {
  const used = new Set<string>();
  for (const [name, module] of model.namedModules()) {
    if (!(module instanceof Linear)) continue;
    const type = (['nf4', 'fp4'] as const).find((t) => checkpoint.has(`${name}.weight.quant_state.bitsandbytes__${t}`));
    if (type === undefined) continue;
    const stateKey = `${name}.weight.quant_state.bitsandbytes__${type}`;
    const state = JSON.parse(new TextDecoder().decode((await checkpoint.read(stateKey)).data as Uint8Array)) as { blocksize: number };
    const doubleQuant = checkpoint.has(`${name}.weight.nested_absmax`);
    const layer = new Linear4bit(module.inFeatures, module.outFeatures, { quantType: type, blockSize: state.blocksize, doubleQuant }, { bias: module.bias !== null });
    const parts = new Map<string, Tensor>();
    for (const suffix of [...SUFFIXES, `.quant_state.bitsandbytes__${type}`]) {
      const key = `${name}.weight${suffix}`;
      if (!checkpoint.has(key)) continue;
      parts.set(suffix, await checkpoint.read(key));
      used.add(key);
    }
    try {
      layer.loadQuantized(parts, `${checkpoint.dir}: ${name}`);
    } catch (error) {
      throw new FileFormatError('CheckpointMismatch', checkpoint.dir, (error as Error).message.replace(`${checkpoint.dir}: `, ''));
    }
    model.setSubmodule(name, layer);
  }
  return used;
}
