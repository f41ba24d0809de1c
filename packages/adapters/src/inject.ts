/**
 * Putting an adapter into a model by module replacement: each selected layer
 * becomes a LoraLinear, or for an Embedding a LoraEmbedding, holding it (or
 * gains it, if already wrapped), and each modules_to_save module a
 * ModulesToSaveWrapper with a trainable copy.
 */
import type { Module } from '@lorakit/core';
import { Conv1D, Embedding } from '@lorakit/core/nn';
import type { CausalLM } from '@lorakit/models';
import type { LoraConfig } from './config.ts';
import { LoraLinear } from './lora-linear.ts';
import { LoraEmbedding } from './lora-embedding.ts';
import { isLoraLayer } from './lora-layers.ts';
import { ModulesToSaveWrapper } from './modules-to-save.ts';
import { checkPatternKeys, selectTargets, type TargetSelection } from './targets.ts';

export interface Injection extends TargetSelection {
  /** modules_to_save entries that matched nothing. */
  unmatchedModulesToSave: string[];
}

export function injectAdapter(model: CausalLM, config: LoraConfig, adapter: string): Injection {
  const selection = selectTargets(model, config);
  checkPatternKeys(config, selection.names);
  for (const name of selection.names) {
    const module = model.getSubmodule(name);
    const { r, alpha } = config.rankAndAlpha(name);
    const layer = isLoraLayer(module) ? module : module instanceof Embedding ? new LoraEmbedding(module, paddingIdxOf(model, name, module)) : new LoraLinear(module);
    layer.addAdapter(adapter, { r, alpha, scaling: config.scaling(name), dropout: config.loraDropout, useDora: config.useDora, initLoraWeights: config.initLoraWeights });
    if (layer !== module) model.setSubmodule(name, layer);
  }
  const unmatchedModulesToSave = (config.modulesToSave ?? []).filter((entry) => wrapModulesToSave(model, entry, adapter) === 0);
  return { ...selection, unmatchedModulesToSave };
}

/**
 * The padding_idx transformers gives an embedding, which PEFT's LoRA lookup
 * passes on (no gradient for that row of Aᵀ): every decoder lorakit builds
 * from the Llama code makes embed_tokens with padding_idx = pad_token_id;
 * GPT-2's wte and wpe have none.
 */
function paddingIdxOf(model: CausalLM, name: string, embedding: Embedding): number | null {
  const pad = (model.config as { pad_token_id?: number | null }).pad_token_id;
  const isTokenEmbedding = name === 'embed_tokens' || name.endsWith('.embed_tokens');
  return isTokenEmbedding && Number.isInteger(pad) && pad! >= 0 && pad! < embedding.numEmbeddings ? pad! : null;
}

/** Wrap every module whose name is `entry` or ends in `.entry` (an existing wrapper gains a copy); returns how many. */
function wrapModulesToSave(model: CausalLM, entry: string, adapter: string): number {
  const matches = model.namedModules().filter(([name]) => (name === entry || name.endsWith(`.${entry}`)) && !isInsideWrapper(name));
  for (const [name, module] of matches) {
    const existing = model.getSubmodule(name);
    const wrapper = existing instanceof ModulesToSaveWrapper ? existing : new ModulesToSaveWrapper(module as Module);
    wrapper.addAdapter(adapter);
    if (wrapper !== existing) model.setSubmodule(name, wrapper);
  }
  const wrapped = model.namedModules().filter(([name, m]) => m instanceof ModulesToSaveWrapper && (name === entry || name.endsWith(`.${entry}`)));
  return wrapped.length;
}

function isInsideWrapper(name: string): boolean {
  return /\.(original_module|modules_to_save|base_layer|lora_A|lora_B|lora_embedding_A|lora_embedding_B)(\.|$)/.test(name);
}

/** Whether any adapted layer stores its weight [in, out] (GPT-2's Conv1D), which PEFT records as fan_in_fan_out. */
export function hasTransposedTargets(model: CausalLM): boolean {
  return model.modules().some((m) => m instanceof LoraLinear && m.base_layer instanceof Conv1D);
}
