/**
 * LlamaForCausalLM, also for mistral (sliding window), qwen2 (q/k/v biases), qwen3 (q/k norms), smollm3 (NoPE
 * layers) and granite (scalars): every family of llama/config.ts.
 *
 *   ids [B, T] -> embed_tokens (·embedding_multiplier) -> layers × N -> norm -> lm_head (/ logits_scaling) -> logits [B, T, V]
 *
 * Property names are transformers' own, so stateDict() keys are the checkpoint's.
 */
import { Module, type Tensor } from '@lorakit/core';
import { Embedding, Linear, RMSNorm } from '@lorakit/core/nn';
import { LlamaDecoderLayer } from './decoder-layer.ts';
import { layerConfig, outerScalars, type LlamaFamilyConfig } from './config.ts';
import { inverseFrequencies, rotaryFor } from '../rope.ts';
import { CausalLM, KVCache, causalBias, runLayer, headOutput, checkInputIds, positionsOf, type CausalLMInputs, type CausalLMOutput } from '../causal-lm.ts';

export class LlamaModel extends Module {
  embed_tokens: Embedding;
  layers: LlamaDecoderLayer[];
  norm: RMSNorm;
  readonly invFreq: Float64Array; // rotary inverse frequencies [D/2]

  /** Recompute each layer in the backward instead of keeping its activations (training only). */
  gradientCheckpointing = false;

  constructor(readonly config: LlamaFamilyConfig) {
    super();
    this.embed_tokens = new Embedding(config.vocab_size, config.hidden_size);
    this.layers = Array.from({ length: config.num_hidden_layers }, (_, i) => new LlamaDecoderLayer(layerConfig(config, i)));
    this.norm = new RMSNorm(config.hidden_size, config.rms_norm_eps);
    this.invFreq = inverseFrequencies(config);
  }

  forward({ inputIds, attentionMask, positionIds, cache }: CausalLMInputs): Tensor {
    checkInputIds(inputIds, this.config.vocab_size);
    const past = cache?.length ?? 0;
    const rotary = rotaryFor(positionsOf(inputIds, positionIds, past), this.invFreq);
    const window = this.config.model_type === 'mistral' ? (this.config.sliding_window ?? null) : null;
    const bias = causalBias(inputIds, attentionMask, past, window);
    const embedded = this.embed_tokens.call(inputIds); // [B, T, C]
    const multiplier = outerScalars(this.config).embedding;
    let h = multiplier === 1 ? embedded : embedded.mul(multiplier);
    this.layers.forEach((layer, i) => {
      const layerCache = cache?.layers[i] ?? null;
      h = runLayer(this, h, layerCache, (x) => layer.call(x, rotary, bias, layerCache));
    });
    return this.norm.call(h);
  }
}

export class LlamaForCausalLM extends CausalLM {
  model: LlamaModel;
  lm_head: Linear;

  constructor(readonly config: LlamaFamilyConfig) {
    super();
    this.model = new LlamaModel(config);
    this.lm_head = new Linear(config.hidden_size, config.vocab_size, { bias: false });
    if (config.tie_word_embeddings) this.lm_head.weight = this.model.embed_tokens.weight;
  }

  forward(inputs: CausalLMInputs): CausalLMOutput {
    return headOutput(this.lm_head, this.model.call(inputs), inputs, outerScalars(this.config).logits);
  }

  tiedWeights(): Array<[string, string]> {
    return this.config.tie_word_embeddings ? [['lm_head.weight', 'model.embed_tokens.weight']] : [];
  }

  enableGradientCheckpointing(on = true): void {
    this.model.gradientCheckpointing = on;
  }

  outputEmbeddingsName(): string {
    return 'lm_head';
  }

  newCache(): KVCache {
    return new KVCache(this.config.num_hidden_layers);
  }
}
