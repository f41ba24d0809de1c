/**
 * What sets a model's architecture apart, in words, for `lora inspect` and the like:
 *
 *   describeArchitecture(config)
 *   // ['fused qkv_proj and gate_up_proj', 'longrope rotary positions on 4 of 8 dims per head', 'sliding window of 8 positions', 'tied embeddings']
 */
import type { ModelConfig } from './config.ts';
import { FAMILY_TRAITS, layerConfig, outerScalars, type LlamaFamilyConfig } from './llama/config.ts';
import { ropeParameters } from './rope.ts';

export function describeArchitecture(config: ModelConfig): string[] {
  if (config.model_type === 'gpt2') return ['learned positions', 'Conv1D layers (PEFT fan_in_fan_out)', ...(config.tie_word_embeddings ? ['tied embeddings'] : [])];
  if (config.model_type === 'gemma3') { // its language model, whose head has no final soft cap (Gemma3ForConditionalGeneration)
    const text = { ...config.text_config, final_logit_softcapping: null, tie_word_embeddings: config.tie_word_embeddings };
    return ['language model of a multimodal checkpoint (vision tower left alone)', ...describeArchitecture(text)];
  }
  return [...layerFeatures(config), ...ropeFeatures(config), ...attentionFeatures(config), ...scalarFeatures(config), ...(config.tie_word_embeddings ? ['tied embeddings'] : [])];
}

function layerFeatures(c: LlamaFamilyConfig): string[] {
  const traits = FAMILY_TRAITS[c.model_type];
  const layer = layerConfig(c, 0);
  return [
    traits.fused ? 'fused qkv_proj and gate_up_proj' : '',
    { pre: '', sandwich: 'norms before and after each sublayer', post: 'norms after each sublayer' }[traits.norms],
    traits.norm === 'gemma' ? 'RMSNorm as x·(1 + w)' : '',
    { none: '', head: 'q/k norms per head', projection: 'q/k norms over the whole projection' }[traits.qkNorm],
    layer.hidden_act === 'silu' ? '' : `gated MLP with ${layer.hidden_act}`,
    layer.qkv_bias ? 'q/k/v biases' : '',
  ].filter(Boolean);
}

function ropeFeatures(c: LlamaFamilyConfig): string[] {
  const layers = Array.from({ length: c.num_hidden_layers }, (_, i) => layerConfig(c, i));
  const ropes = [...new Set(layers.map((l) => l.rope).filter((r) => r !== null))];
  const described = ropes.map((rope) => {
    const p = ropeParameters(c, rope);
    const dims = layers.find((l) => l.rope === rope)!.rotary_dim;
    const part = dims < c.head_dim ? ` on ${dims} of ${c.head_dim} dims per head` : '';
    const which = rope === 'default' ? '' : ` in ${rope.replace('_attention', '')} layers`;
    return `${p.rope_type} rotary positions (base ${p.rope_theta})${part}${which}`;
  });
  const nope = layers.flatMap((l, i) => (l.rope === null ? [i] : []));
  return [...described, ...(nope.length ? [`no rotary positions in layers ${nope.join(', ')}`] : [])];
}

function attentionFeatures(c: LlamaFamilyConfig): string[] {
  const windows = Array.from({ length: c.num_hidden_layers }, (_, i) => layerConfig(c, i).sliding_window);
  const sliding = windows.filter((w) => w !== null).length;
  const cap = layerConfig(c, 0).attn_softcap;
  return [
    sliding === 0 ? '' : sliding === windows.length ? `sliding window of ${windows[0]} positions` : `${sliding} of ${windows.length} layers with a sliding window of ${windows.find((w) => w !== null)} positions`,
    cap === null ? '' : `attention scores soft-capped at ${cap}`,
  ].filter(Boolean);
}

function scalarFeatures(c: LlamaFamilyConfig): string[] {
  const { embedding, logits, logitsSoftcap } = outerScalars(c);
  return [
    embedding === 1 ? '' : `embeddings times ${Number(embedding.toPrecision(6))}`,
    layerConfig(c, 0).residual_multiplier === 1 ? '' : `residuals times ${c.residual_multiplier}`,
    logits === 1 ? '' : `logits divided by ${logits}`,
    logitsSoftcap === null ? '' : `logits soft-capped at ${logitsSoftcap}`,
  ].filter(Boolean);
}
