/**
 * PeftModel: a model with LoRA adapters, as PEFT's PeftModel.
 *
 *   const peft = getPeftModel(model, new LoraConfig({ r: 8, loraAlpha: 16, targetModules: ['q_proj', 'v_proj'] }));
 *   peft.printTrainableParameters();  // trainable params: 43,008 || all params: 5,813,504 || trainable%: 0.7398
 *   await peft.savePretrained('out/adapter');
 *
 * Its tree is PEFT's: peft.base_model.model is the transformers-style model,
 * so in-memory keys read base_model.model.model.layers.0.self_attn.q_proj.lora_A.default.weight.
 */
import { Module, disposeCompiled, noGrad, type Parameter } from '@lorakit/core';
import { Linear, Linear4bit, Linear8bit } from '@lorakit/core/nn';
import type { CausalLM, CausalLMInputs, CausalLMOutput, KVCache } from '@lorakit/models';
import { LoraConfig } from './config.ts';
import { LoraLinear } from './lora-linear.ts';
import { isLoraLayer, type LoraLayer } from './lora-layers.ts';
import { ModulesToSaveWrapper } from './modules-to-save.ts';
import { hasTransposedTargets, injectAdapter } from './inject.ts';
import { markOnlyAdapterTrainable, trainableSummary } from './trainable.ts';
import { loadAdapterTensors, readAdapterFiles, saveAdapters } from './adapter-io.ts';
import { addWeightedAdapter, type Combination } from './weighted.ts';

export interface FromPretrainedOptions {
  /** Keep the adapter trainable (default: frozen, in eval mode, as PEFT's inference mode). */
  isTrainable?: boolean;
  adapterName?: string;
  /** Told about ignored config fields and adapters that do nothing (default: process.emitWarning). */
  onWarning?: (message: string) => void;
}

/** PEFT's LoraModel: holds the model, so keys start base_model.model. */
export class LoraModel extends Module {
  model: CausalLM;

  constructor(model: CausalLM) {
    super();
    this.model = model;
  }

  forward(inputs: CausalLMInputs): CausalLMOutput {
    return this.model.call(inputs);
  }
}

export interface AdapterReport {
  /** Module names that received the adapter. */
  wrapped: string[];
  /** Entries of target_modules that matched nothing (PEFT ignores them silently). */
  unmatchedTargets: string[];
  unmatchedModulesToSave: string[];
}

export class PeftModel extends Module {
  base_model: LoraModel;
  readonly peftConfig = new Map<string, LoraConfig>();
  readonly reports = new Map<string, AdapterReport>();
  activeAdapter: string;

  constructor(model: CausalLM, config: LoraConfig, adapterName = 'default') {
    super();
    this.base_model = new LoraModel(model);
    this.activeAdapter = adapterName;
    this.addAdapter(adapterName, config);
    this.setAdapter(adapterName);
    this.train(model.training);
  }

  get model(): CausalLM {
    return this.base_model.model;
  }

  /** The wrapped model's config (so generate() takes a PeftModel as it takes a model). */
  get config(): CausalLM['config'] {
    return this.model.config;
  }

  newCache(): KVCache {
    return this.model.newCache();
  }

  forward(inputs: CausalLMInputs): CausalLMOutput {
    return this.base_model.call(inputs);
  }

  // ---- adapters ----

  addAdapter(name: string, config: LoraConfig): AdapterReport {
    if (this.peftConfig.has(name)) throw new Error(`an adapter named "${name}" already exists`);
    if (name === '' || name.includes('.')) throw new Error(`adapter name "${name}" must be non-empty and without dots`);
    const injection = injectAdapter(this.model, config, name);
    const saved = config.with({ targetModules: injection.targetModules, fanInFanOut: config.fanInFanOut || hasTransposedTargets(this.model) });
    this.peftConfig.set(name, saved);
    const report = { wrapped: injection.names, unmatchedTargets: injection.unmatchedEntries, unmatchedModulesToSave: injection.unmatchedModulesToSave };
    this.reports.set(name, report);
    this.#activate(this.activeAdapter);
    markOnlyAdapterTrainable(this, this.activeAdapter, this.peftConfig.get(this.activeAdapter)!.bias);
    return report;
  }

  /** Point every layer and modules_to_save wrapper at `name` (layers without it run their base). */
  #activate(name: string): void {
    for (const [, layer] of this.adaptedLayers()) layer.activeAdapters = layer.settings.has(name) ? [name] : [];
    for (const wrapper of this.#wrappers()) wrapper.activeAdapter = wrapper.modules_to_save.has(name) ? name : null;
  }

  /** A new adapter from weighted existing ones (see weighted.ts for the math); not made active. */
  addWeightedAdapter(adapters: string[], weights: number[], newName: string, combination: Combination = 'svd', options: { svdRank?: number } = {}): void {
    addWeightedAdapter(this, adapters, weights, newName, combination, { svdRank: options.svdRank ?? null });
  }

  /** Make `name` the adapter that runs and trains. */
  setAdapter(name: string): void {
    const config = this.peftConfig.get(name);
    if (config === undefined) throw new Error(`no adapter named "${name}"; adapters: ${[...this.peftConfig.keys()].join(', ')}`);
    this.activeAdapter = name;
    this.#activate(name);
    if (!config.inferenceMode) markOnlyAdapterTrainable(this, name, config.bias);
  }

  deleteAdapter(name: string): void {
    if (!this.peftConfig.has(name)) throw new Error(`no adapter named "${name}"`);
    for (const [, layer] of this.adaptedLayers()) layer.deleteAdapter(name);
    for (const wrapper of this.#wrappers()) wrapper.modules_to_save.delete(name);
    this.peftConfig.delete(name);
    this.reports.delete(name);
    if (this.activeAdapter === name) {
      const next = this.peftConfig.keys().next();
      if (!next.done) this.setAdapter(next.value);
    }
  }

  /** The LoRA linear layers (LoraLinear); adaptedLayers() adds the LoRA embeddings. */
  loraLayers(): Array<[string, LoraLinear]> {
    return this.namedModules().filter((entry): entry is [string, LoraLinear] => entry[1] instanceof LoraLinear);
  }

  /** Every LoRA layer: LoraLinear and LoraEmbedding modules. */
  adaptedLayers(): Array<[string, LoraLayer]> {
    return this.namedModules().filter((entry): entry is [string, LoraLayer] => isLoraLayer(entry[1]));
  }

  #wrappers(): ModulesToSaveWrapper[] {
    return this.modules().filter((m): m is ModulesToSaveWrapper => m instanceof ModulesToSaveWrapper);
  }

  /** Run `fn` on the base model alone: every adapter (and modules_to_save copy) off, then back on. */
  withAdapterDisabled<T>(fn: () => T): T {
    const layers = [...this.adaptedLayers().map(([, l]) => l), ...this.#wrappers()];
    const before = layers.map((l) => l.disabled);
    const restore = () => layers.forEach((l, i) => (l.disabled = before[i]));
    layers.forEach((l) => (l.disabled = true));
    let result: T;
    try {
      result = fn();
    } catch (error) {
      restore();
      throw error;
    }
    if (result instanceof Promise) return result.finally(restore) as T;
    restore();
    return result;
  }

  // ---- merging ----

  merge({ adapterNames = [this.activeAdapter], safe = false }: { adapterNames?: string[]; safe?: boolean } = {}): void {
    disposeCompiled(); // compiled layers trace the merged layers again; the old sessions' memory goes back now
    noGrad(() => {
      for (const [, layer] of this.adaptedLayers()) layer.merge(adapterNames.filter((n) => layer.settings.has(n)), { safe });
    });
  }

  /** merge() that refuses, before changing any weight, when the result would hold NaN or Inf. */
  safeMerge(adapterNames?: string[]): void {
    noGrad(() => {
      for (const [name, layer] of this.adaptedLayers()) {
        for (const adapter of adapterNames ?? [this.activeAdapter]) {
          if (!layer.settings.has(adapter) || layer.mergedAdapters.includes(adapter)) continue;
          if (!layer.mergedWeight(adapter).weight.values.every(Number.isFinite)) {
            throw new Error(`adapter "${adapter}" would put NaN or Inf into ${name}; nothing was merged`);
          }
        }
      }
    });
    this.merge({ adapterNames, safe: true });
  }

  unmerge(): void {
    disposeCompiled();
    noGrad(() => this.adaptedLayers().forEach(([, layer]) => layer.unmerge()));
  }

  /**
   * Merge the active adapter and return the plain model: no LoRA layers, modules_to_save copies in place.
   * On a 4-bit (QLoRA) base, `dequantize: true` first turns every 4-bit layer into a float Linear holding
   * dequant(W), so the merge is exactly W4 + ΔW, what the adapter was trained against; without it the
   * merged weight is quantized again (PEFT's behaviour: lossy). To merge into the original 16-bit weights
   * instead, load the adapter onto the unquantized model and merge there.
   */
  mergeAndUnload({ safe = false, adapterNames, dequantize = false }: { safe?: boolean; adapterNames?: string[]; dequantize?: boolean } = {}): CausalLM {
    if (dequantize) dequantizeLayers(this.model);
    if (safe) this.safeMerge(adapterNames);
    else this.merge({ adapterNames });
    return this.unload();
  }

  /** The model without adapters (merged ones stay in the weights). */
  unload(): CausalLM {
    const model = this.model;
    for (const [name, module] of model.namedModules().reverse()) {
      if (isLoraLayer(module)) model.setSubmodule(name, module.base_layer);
      if (module instanceof ModulesToSaveWrapper) model.setSubmodule(name, module.current);
    }
    return model;
  }

  // ---- files ----

  /** Write adapter_config.json and adapter_model.safetensors (other adapters in sub-folders, as PEFT does). */
  async savePretrained(dir: string, { adapterNames = [...this.peftConfig.keys()] }: { adapterNames?: string[] } = {}): Promise<void> {
    await saveAdapters(this, dir, adapterNames);
  }

  /** Load a PEFT adapter folder onto `model`. */
  static async fromPretrained(model: CausalLM, dir: string, { isTrainable = false, adapterName = 'default', onWarning = (m) => process.emitWarning(m) }: FromPretrainedOptions = {}): Promise<PeftModel> {
    const files = await readAdapterFiles(dir, onWarning);
    const peft = new PeftModel(model, files.config.with({ initLoraWeights: false, inferenceMode: !isTrainable }), adapterName);
    peft.#finishLoading(adapterName, files, isTrainable, onWarning);
    return peft;
  }

  /** Load another adapter folder next to the existing ones. */
  async loadAdapter(dir: string, adapterName: string, { isTrainable = false, onWarning = (m: string) => process.emitWarning(m) } = {}): Promise<AdapterReport> {
    const files = await readAdapterFiles(dir, onWarning);
    const report = this.addAdapter(adapterName, files.config.with({ initLoraWeights: false, inferenceMode: !isTrainable }));
    this.#finishLoading(adapterName, files, isTrainable, onWarning);
    this.setAdapter(this.activeAdapter);
    return report;
  }

  #finishLoading(adapter: string, files: Parameters<typeof loadAdapterTensors>[2], isTrainable: boolean, warn: (m: string) => void): void {
    try {
      loadAdapterTensors(this, adapter, files, warn);
    } catch (error) {
      this.deleteAdapterForRollback(adapter);
      throw error;
    }
    if (!isTrainable) {
      this.freeze();
      this.eval();
    }
  }

  /** Undo an adapter injection that failed to load, leaving the model as it was. */
  deleteAdapterForRollback(adapter: string): void {
    if (this.peftConfig.size > 1) return this.deleteAdapter(adapter);
    for (const wrapper of this.#wrappers()) wrapper.disabled = true; // unload() then restores the originals
    this.unload();
  }

  // ---- parameters ----

  trainableParameters(): Array<[string, Parameter]> {
    return this.namedParameters().filter(([, p]) => p.requiresGrad);
  }

  /** PEFT's line: "trainable params: 43,008 || all params: 5,813,504 || trainable%: 0.7398". */
  trainableParametersSummary(): string {
    return trainableSummary(this);
  }

  printTrainableParameters(): void {
    console.log(this.trainableParametersSummary());
  }
}

/** Replace every Linear4bit and Linear8bit (wrapped or not) by a float Linear with its dequantized weight. */
function dequantizeLayers(model: CausalLM): void {
  for (const [name, module] of model.namedModules()) {
    if (!(module instanceof Linear4bit || module instanceof Linear8bit)) continue;
    const dense = new Linear(module.inFeatures, module.outFeatures, { bias: module.bias !== null });
    dense.weight.values.set(module.denseWeight().values);
    if (module.bias && dense.bias) dense.bias.values.set(module.bias.values);
    dense.requiresGrad_(false);
    model.setSubmodule(name, dense);
  }
}

export function getPeftModel(model: CausalLM, config: LoraConfig, adapterName = 'default'): PeftModel {
  return new PeftModel(model, config, adapterName);
}
