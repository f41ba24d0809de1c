/**
 * The tensors an adapter file must hold for a model, by saved (PEFT) key,
 * from the model's weight layout alone: what PeftModel.fromPretrained would
 * inject, for readers that never build the model (the streaming merge).
 *
 *   const expected = expectedAdapterTensors(weightLayout(modelConfig), adapterConfig);
 *   expected.get('base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight')  // [8, 256]
 *
 * Target selection runs through PEFT's rules in targets.ts on stand-ins for
 * the layout's modules, so its errors (NoMatchingModules, a target that is not
 * a linear layer) are the loader's own. The keys and shapes equal
 * adapterStateDict() of the loaded PeftModel (adapter-layout.test.ts checks
 * that on every PEFT-made adapter).
 */
import { Module } from '@lorakit/core';
import { Conv1D, Embedding, Linear } from '@lorakit/core/nn';
import type { CausalLM, LayoutModule, WeightLayout } from '@lorakit/models';
import type { LoraConfig } from './config.ts';
import { checkPatternKeys, selectTargets } from './targets.ts';
import { factorLocals, savedKeyOf, savesEmbeddingBase } from './peft-format.ts';

/**
 * A module of the layout as targets.ts sees it: a Linear, Conv1D or Embedding
 * by class (made without its constructor, so without weights), anything else by name.
 */
function standIn(type: string): Module {
  if (type === 'Linear') return Object.create(Linear.prototype) as Linear;
  if (type === 'Conv1D') return Object.create(Conv1D.prototype) as Conv1D;
  if (type === 'Embedding') return Object.create(Embedding.prototype) as Embedding;
  return { constructor: { name: type } } as unknown as Module;
}

/** What selectTargets reads of a model: its named modules, its head and its model_type. */
function layoutModel(layout: WeightLayout): CausalLM {
  const named = layout.modules.map((m) => [m.name, standIn(m.type)] as [string, Module]);
  const view = { namedModules: () => named, modules: () => named.map(([, m]) => m), outputEmbeddingsName: () => layout.head, config: { model_type: layout.modelType } };
  return view as unknown as CausalLM;
}

/** A layout module's weight as [out, in] features (Conv1D stores [in, out], an Embedding [num, dim]: in = num, out = dim). */
function features(module: LayoutModule): { inp: number; out: number; bias: boolean } {
  const weight = module.tensors.find(([n]) => n === 'weight')![1];
  const [out, inp] = module.type === 'Conv1D' || module.type === 'Embedding' ? [weight[1], weight[0]] : [weight[0], weight[1]];
  return { inp, out, bias: module.tensors.some(([n]) => n === 'bias') };
}

/** Whether `name` is a modules_to_save module (matched as inject.ts wraps them: the name or a dotted suffix). */
function savesWhole(config: LoraConfig, name: string): boolean {
  return (config.modulesToSave ?? []).some((entry) => name === entry || name.endsWith(`.${entry}`));
}

/** Saved key -> shape for every tensor the adapter holds on a model of this layout, in the model's order. */
export function expectedAdapterTensors(layout: WeightLayout, config: LoraConfig): Map<string, number[]> {
  const { names } = selectTargets(layoutModel(layout), config);
  checkPatternKeys(config, names);
  const targeted = new Set(names);
  // the input embedding (the first one of the tree) and the head, whose base weights PEFT saves when embeddings are targeted
  const input = layout.modules.find((m) => m.type === 'Embedding')?.name;
  const savedBases = new Set(savesEmbeddingBase(config.targetModules, layout.modules.map((m) => m.name)) ? [input, layout.head].filter((n) => n !== undefined && targeted.has(n)) : []);
  const expected = new Map<string, number[]>();
  let saved: string | null = null; // the modules_to_save module being walked, whose tensors are saved whole
  for (const module of layout.modules) {
    const { name } = module;
    if (saved !== null && !name.startsWith(`${saved}.`)) saved = null;
    if (saved === null && name !== '' && savesWhole(config, name)) saved = name;
    if (saved !== null) {
      for (const [local, shape] of module.tensors) expected.set(savedKeyOf(name, local), shape);
    } else if (targeted.has(name)) {
      const { inp, out, bias } = features(module);
      const { r } = config.rankAndAlpha(name);
      if (savedBases.has(name)) for (const [local, shape] of module.tensors) expected.set(savedKeyOf(name, `base_layer.${local}`), shape);
      else if (bias && config.bias !== 'none') expected.set(savedKeyOf(name, 'base_layer.bias'), [out]);
      const factors = factorLocals(module.type === 'Embedding');
      expected.set(savedKeyOf(name, factors.a), [r, inp]);
      expected.set(savedKeyOf(name, factors.b), [out, r]);
      if (config.useDora) expected.set(savedKeyOf(name, 'lora_magnitude_vector'), [out]);
    } else if (config.bias === 'all') {
      for (const [local, shape] of module.tensors) if (local === 'bias') expected.set(savedKeyOf(name, 'bias'), shape);
    }
  }
  return expected;
}
