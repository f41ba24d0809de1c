/**
 * Gemma3ForConditionalGeneration read as its language model, text only: the module tree is transformers'
 * in-memory one without the vision part, so stateDict() names and LoRA target names are transformers' own.
 *
 *   Gemma3ForConditionalGeneration
 *     model: Gemma3Model
 *       language_model: LlamaModel (the gemma3_text decoder built from text_config)
 *     lm_head: Linear (tied to model.language_model.embed_tokens by default)
 *
 *   ids [B, T] -> language_model -> lm_head -> logits [B, T, V]
 *
 * Unlike Gemma3ForCausalLM the head applies no final_logit_softcapping, as in transformers. The stored keys
 * (language_model.model.*, the vision tensors beside them) are checkpoint-keys.ts's business.
 */
import { Module, type Tensor } from '@lorakit/core';
import { Linear } from '@lorakit/core/nn';
import { LlamaModel } from '../llama/model.ts';
import { CausalLM, headOutput, type CausalLMInputs, type CausalLMOutput, type KVCache } from '../causal-lm.ts';
import type { Gemma3Config } from './config.ts';

export class Gemma3Model extends Module {
  language_model: LlamaModel;

  constructor(config: Gemma3Config) {
    super();
    this.language_model = new LlamaModel(config.text_config);
  }

  forward(inputs: CausalLMInputs): Tensor {
    return this.language_model.call(inputs);
  }
}

export class Gemma3ForConditionalGeneration extends CausalLM {
  model: Gemma3Model;
  lm_head: Linear;

  constructor(readonly config: Gemma3Config) {
    super();
    this.model = new Gemma3Model(config);
    const text = config.text_config;
    this.lm_head = new Linear(text.hidden_size, text.vocab_size, { bias: false });
    if (config.tie_word_embeddings) this.lm_head.weight = this.model.language_model.embed_tokens.weight;
  }

  forward(inputs: CausalLMInputs): CausalLMOutput {
    return headOutput(this.lm_head, this.model.call(inputs), inputs);
  }

  tiedWeights(): Array<[string, string]> {
    return this.config.tie_word_embeddings ? [['lm_head.weight', 'model.language_model.embed_tokens.weight']] : [];
  }

  enableGradientCheckpointing(on = true): void {
    this.model.language_model.gradientCheckpointing = on;
  }

  enableCompiledLayers(on = true): void {
    this.model.language_model.compiledLayers = on;
  }

  outputEmbeddingsName(): string {
    return 'lm_head';
  }

  newCache(): KVCache {
    return this.model.language_model.newCache();
  }
}
