/**
 * LlamaForCausalLM, for every family of llama/config.ts: llama, mistral, qwen2, qwen3, smollm3, granite,
 * gemma, gemma2, gemma3_text, phi3, olmo2.
 *
 *   ids [B, T] -> embed_tokens (·embedding scale) -> layers × N -> norm -> lm_head (/ logits_scaling, softcap) -> logits [B, T, V]
 *
 * Property names are transformers' own, so stateDict() keys are the checkpoint's.
 */
import { Module, Tensor } from '@lorakit/core';
import { Embedding, Linear } from '@lorakit/core/nn';
import { LlamaDecoderLayer } from './decoder-layer.ts';
import type { LayerContext } from './attention.ts';
import { familyNorm, type FamilyNorm } from './norm.ts';
import { FAMILY_TRAITS, layerConfig, outerScalars, type LlamaFamilyConfig } from './config.ts';
import { Rotary, unrotated, type RotaryTables } from '../rope.ts';
import { CausalLM, KVCache, causalBias, runLayer, headOutput, checkInputIds, positionsOf, type CausalLMInputs, type CausalLMOutput } from '../causal-lm.ts';

export class LlamaModel extends Module {
  embed_tokens: Embedding;
  layers: LlamaDecoderLayer[];
  norm: FamilyNorm;
  /** The ropes the layers use, by name: 'default', or gemma3_text's layer types. */
  readonly rotaries: Map<string, Rotary>;

  /** Recompute each layer in the backward instead of keeping its activations (training only). */
  gradientCheckpointing = false;
  /** Run each layer as compiled sessions (runLayer). */
  compiledLayers = false;

  constructor(readonly config: LlamaFamilyConfig) {
    super();
    this.embed_tokens = new Embedding(config.vocab_size, config.hidden_size);
    const layerConfigs = Array.from({ length: config.num_hidden_layers }, (_, i) => layerConfig(config, i));
    this.layers = layerConfigs.map((c) => new LlamaDecoderLayer(c));
    this.norm = familyNorm(FAMILY_TRAITS[config.model_type], config.hidden_size, config.rms_norm_eps);
    const ropes = new Set(['default', ...layerConfigs.flatMap((c) => (c.rope === null ? [] : [c.rope]))]);
    this.rotaries = new Map([...ropes].map((rope) => [rope, new Rotary(config, rope)]));
  }

  /** Rope tables and masks for one forward, each made once and only if a layer asks for it. */
  private context({ inputIds, attentionMask, positionIds }: CausalLMInputs, past: number): LayerContext {
    const positions = positionsOf(inputIds, positionIds, past);
    const tables = new Map<string, RotaryTables>();
    const biases = new Map<number | null, Tensor>();
    const rotary = (rope: string) => tables.get(rope) ?? tables.set(rope, this.rotaries.get(rope)!.tables(positions)).get(rope)!;
    return {
      rotary: (rope) => (rope === null ? unrotated(rotary('default')) : rotary(rope)),
      positions: () => Tensor.fromArray(positions, 'int64'),
      bias: (window) => biases.get(window) ?? biases.set(window, causalBias(inputIds, attentionMask, past, window)).get(window)!,
    };
  }

  /** A cache with one entry per layer, stale past the rope's switch (phi3's longrope). */
  newCache(): KVCache {
    const switches = [...this.rotaries.values()].map((r) => r.switchesAfter).filter((n) => n !== null);
    return new KVCache(this.config.num_hidden_layers, switches[0] ?? null);
  }

  forward(inputs: CausalLMInputs): Tensor {
    const { inputIds, cache } = inputs;
    checkInputIds(inputIds, this.config.vocab_size);
    const context = inputs.context ?? this.context(inputs, cache?.length ?? 0);
    const embedded = this.embed_tokens.call(inputIds); // [B, T, C]
    const multiplier = outerScalars(this.config).embedding;
    let h = multiplier === 1 ? embedded : embedded.mul(multiplier);
    this.layers.forEach((layer, i) => {
      const layerCache = cache?.layers[i] ?? null;
      h = runLayer(this, h, layerCache, layer, () => layer.contextInputs(context), (x) => layer.call(x, context, layerCache));
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
    const { logits, logitsSoftcap } = outerScalars(this.config);
    return headOutput(this.lm_head, this.model.call(inputs), inputs, { divisor: logits, softcap: logitsSoftcap });
  }

  tiedWeights(): Array<[string, string]> {
    return this.config.tie_word_embeddings ? [['lm_head.weight', 'model.embed_tokens.weight']] : [];
  }

  enableGradientCheckpointing(on = true): void {
    this.model.gradientCheckpointing = on;
  }

  enableCompiledLayers(on = true): void {
    this.model.compiledLayers = on;
  }

  outputEmbeddingsName(): string {
    return 'lm_head';
  }

  newCache(): KVCache {
    return this.model.newCache();
  }
}
