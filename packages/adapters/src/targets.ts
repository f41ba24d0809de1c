/**
 * Which modules get an adapter: PEFT's check_target_module_exists, exactly.
 *
 *   exclude_modules first (regex: whole name; list: exact or dotted suffix);
 *   modules inside a modules_to_save module are skipped;
 *   a string target is a regex that must match the whole module name;
 *   a list entry matches the name exactly or as a dotted suffix, and only then
 *   do layers_to_transform / layers_pattern filter by layer index;
 *   "all-linear" is every Linear and Conv1D except the output head (never an
 *   Embedding: PEFT's all-linear takes linear layers only).
 * A selected Embedding becomes a LoraEmbedding; DoRA on one is refused here,
 * so loading and the streamed merge refuse it alike.
 *
 * Unlike PEFT, a list entry that matched nothing is reported by name.
 */
import type { Module } from '@lorakit/core';
import { Embedding, Linear, Linear4bit, Linear8bit, Conv1D } from '@lorakit/core/nn';
import { checkpointKeys, type CausalLM } from '@lorakit/models';
import { quote } from '@lorakit/core/io';
import type { LoraConfig, TargetModules } from './config.ts';
import { LoraLinear } from './lora-linear.ts';
import { LoraEmbedding } from './lora-embedding.ts';
import { isLoraLayer } from './lora-layers.ts';

export type Targetable = Linear | Conv1D | Linear4bit | Linear8bit | LoraLinear | Embedding | LoraEmbedding;

/** A linear layer (what "all-linear" takes), wrapped or not. */
export function isLinearLayer(m: Module): boolean {
  return m instanceof Linear || m instanceof Conv1D || m instanceof Linear4bit || m instanceof Linear8bit || m instanceof LoraLinear;
}

export function isEmbeddingLayer(m: Module): m is Embedding | LoraEmbedding {
  return m instanceof Embedding || m instanceof LoraEmbedding;
}

export function isTargetable(m: Module): m is Targetable {
  return isLinearLayer(m) || isEmbeddingLayer(m);
}

/** Anchored like Python's re.fullmatch. */
const fullMatch = (pattern: string, name: string) => new RegExp(`^(?:${pattern})$`).test(name);
const listMatch = (entries: readonly string[], name: string) => entries.some((e) => name === e || name.endsWith(`.${e}`));

function excluded(config: LoraConfig, name: string): boolean {
  const exclude = config.excludeModules;
  if (exclude !== null && (typeof exclude === 'string' ? fullMatch(exclude, name) : listMatch(exclude, name))) return true;
  return (config.modulesToSave ?? []).some((m) => new RegExp(`^(?:|.*\\.)(?:${m})(?:$|\\..*)`).test(name));
}

/** The layer index from the first `.<pattern>.<digits>.` segment (any name when no pattern is set). */
export function layerIndex(name: string, layersPattern: string | string[] | null): number | null {
  const patterns = layersPattern === null || layersPattern.length === 0 ? [null] : typeof layersPattern === 'string' ? [layersPattern] : layersPattern;
  for (const pattern of patterns) {
    const match = pattern === null ? /^.*?\.[^.]*\.(\d+)\./.exec(name) : new RegExp(`^(?:|.*?\\.)${pattern}\\.(\\d+)\\.`).exec(name);
    if (match) return Number(match[1]);
  }
  return null;
}

/** Whether PEFT would put an adapter on the module with this name. */
export function targetMatches(config: LoraConfig, name: string, targets: TargetModules = config.targetModules): boolean {
  if (targets === null || excluded(config, name)) return false;
  if (typeof targets === 'string') return fullMatch(targets, name);
  if (!listMatch(targets, name)) return false;
  const layers = config.layersToTransform;
  if (layers === null || (Array.isArray(layers) && layers.length === 0)) return true;
  const index = layerIndex(name, config.layersPattern);
  return index !== null && (typeof layers === 'number' ? index === layers : layers.includes(index));
}

/** "all-linear" expanded: every linear layer but the output head, outside existing adapter internals. */
export function allLinearNames(model: CausalLM): string[] {
  const head = model.outputEmbeddingsName();
  return candidates(model).filter(([name, m]) => name !== head && isLinearLayer(m)).map(([name]) => name).sort();
}

/** The model's modules, minus the insides of existing LoRA layers. */
function candidates(model: CausalLM): Array<[string, Module]> {
  const inside = new Set<Module>();
  for (const m of model.modules()) if (isLoraLayer(m)) for (const sub of m.modules()) if (sub !== m) inside.add(sub);
  return model.namedModules().filter(([name, m]) => name !== '' && !inside.has(m));
}

export interface TargetSelection {
  /** Module names that get the adapter, in model order. */
  names: string[];
  /** target_modules as it should be saved ("all-linear" expanded; on a model read in part, the adapted modules' names). */
  targetModules: string[] | string;
  /** List entries that matched no module (PEFT ignores them silently). */
  unmatchedEntries: string[];
}

export function selectTargets(model: CausalLM, config: LoraConfig): TargetSelection {
  if (config.targetModules === null || (Array.isArray(config.targetModules) && config.targetModules.length === 0)) {
    throw new Error('LoraConfig.targetModules is empty: name the modules to adapt, for example ["q_proj", "v_proj"] or "all-linear"');
  }
  const targets = config.targetModules === 'all-linear' ? allLinearNames(model) : config.targetModules;
  const names: string[] = [];
  for (const [name, module] of candidates(model)) {
    if (!targetMatches(config, name, targets)) continue;
    if (!isTargetable(module)) {
      throw new Error(`target module ${name} is a ${module.constructor.name}; LoRA applies to Linear, Conv1D, Linear4bit, Linear8bit and Embedding layers (did you mean one of its projections?)`);
    }
    if (config.useDora && isEmbeddingLayer(module)) {
      const message = `target module ${name} is an Embedding: use_dora on embedding layers is not supported by lorakit; leave ${name} out of target_modules, or do without use_dora`;
      throw Object.assign(new Error(message), { name: 'UnsupportedAdapterFeature' });
    }
    names.push(name);
  }
  if (names.length === 0) throw nothingMatched(model, config, targets);
  const unmatchedEntries = Array.isArray(targets) && config.targetModules !== 'all-linear' ? targets.filter((e) => !names.some((n) => n === e || n.endsWith(`.${e}`))) : [];
  // a model that leaves part of its checkpoint alone (gemma3's vision tower): PEFT on the whole model would match
  // these target names or this regex there too, so the saved target_modules list the adapted modules themselves
  const partial = checkpointKeys(model.config.model_type).leftAlone !== null;
  return { names, targetModules: partial ? names : targets, unmatchedEntries };
}

/** Why no module matched: layers_to_transform when the targets match without it, else the targets; each with what the model has. */
function nothingMatched(model: CausalLM, config: LoraConfig, targets: TargetModules): Error {
  const type = model.config.model_type;
  if (config.layersToTransform !== null) {
    const unfiltered = config.with({ layersToTransform: null });
    const layers = [...new Set(candidates(model).filter(([name]) => targetMatches(unfiltered, name, targets)).map(([name]) => layerIndex(name, config.layersPattern)))]
      .filter((i) => i !== null).sort((a, b) => a - b);
    if (layers.length > 0) {
      const message = `layers_to_transform ${quote(config.layersToTransform)} matched no layer of the ${type} model that has the target modules; its layers are ${layers[0]} to ${layers.at(-1)}`;
      return Object.assign(new Error(message), { name: 'NoMatchingLayers', layers });
    }
  }
  const available = [...new Set(allLinearNames(model).map((n) => n.slice(n.lastIndexOf('.') + 1)))];
  const message = `target modules ${quote(config.targetModules)} matched no module of the ${type} model; its linear layers are: ${available.join(', ')}`;
  return Object.assign(new Error(message), { name: 'NoMatchingModules', available });
}

/** Every rank_pattern / alpha_pattern key must match one of the targeted modules (PEFT ignores one that matches none). */
export function checkPatternKeys(config: LoraConfig, names: string[]): void {
  for (const [field, pattern] of [['rankPattern', config.rankPattern], ['alphaPattern', config.alphaPattern]] as const) {
    for (const key of Object.keys(pattern)) {
      if (!names.some((n) => new RegExp(`^(?:.*\\.)?(?:${key})$`).test(n))) {
        throw new Error(`LoraConfig.${field}: key ${quote(key)} matches none of the ${names.length} targeted modules`);
      }
    }
  }
}
