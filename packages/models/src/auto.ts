/**
 * AutoModelForCausalLM: the architecture from config.json's model_type, the
 * weights from the folder, in eval mode (as transformers returns it).
 *
 *   const model = await AutoModelForCausalLM.fromPretrained('examples/models/tiny-code-llama');
 *   const { logits } = model.call({ inputIds });
 */
import { init } from '@lorakit/core';
import { loadConfig, type ModelConfig } from './config.ts';
import { LlamaForCausalLM } from './llama/model.ts';
import { GPT2LMHeadModel } from './gpt2/model.ts';
import { Gemma3ForConditionalGeneration } from './gemma3/model.ts';
import { loadWeights, type LoadWeightsOptions } from './weights.ts';
import type { CausalLM } from './causal-lm.ts';

export interface FromPretrainedOptions extends LoadWeightsOptions {
  /** Compute dtype; lorakit computes in float32 (bf16/f16 checkpoints are widened on load). */
  dtype?: 'float32';
}

/** A model with freshly initialised weights for a config. */
export function modelForConfig(config: ModelConfig): CausalLM {
  if (config.model_type === 'gpt2') return new GPT2LMHeadModel(config);
  return config.model_type === 'gemma3' ? new Gemma3ForConditionalGeneration(config) : new LlamaForCausalLM(config);
}

export class AutoModelForCausalLM {
  static async fromPretrained(dir: string, options: FromPretrainedOptions = {}): Promise<CausalLM> {
    if (options.dtype !== undefined && options.dtype !== 'float32') throw new Error(`fromPretrained: dtype ${options.dtype} is not supported; lorakit computes in float32`);
    const config = await loadConfig(dir);
    const model = init.withoutInit(() => modelForConfig(config));
    await loadWeights(model, dir, options);
    return model.eval();
  }
}
