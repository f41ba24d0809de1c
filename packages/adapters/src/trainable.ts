/**
 * Which parameters train (PEFT's _mark_only_adapters_as_trainable): the active
 * adapter's lora_A, lora_B (lora_embedding_A and _B) and magnitude vectors, its modules_to_save copies,
 * and biases as `bias` says ("all": every bias; "lora_only": the biases of
 * adapted layers). Everything else is frozen.
 */
import type { Module, Parameter } from '@lorakit/core';
import { isLoraLayer } from './lora-layers.ts';
import { ModulesToSaveWrapper } from './modules-to-save.ts';
import type { LoraBias } from './config.ts';

export function markOnlyAdapterTrainable(root: Module, adapter: string, bias: LoraBias): void {
  root.freeze();
  for (const [name, module] of root.namedModules()) {
    if (isLoraLayer(module)) {
      for (const p of module.adapterParameters(adapter)) p.requiresGrad = true;
      if (bias === 'lora_only') for (const p of module.base_layer.ownTensors()) if (p[0] === 'bias') (p[1] as Parameter).requiresGrad = true;
    }
    if (module instanceof ModulesToSaveWrapper) module.modules_to_save.get(adapter)?.unfreeze();
    if (bias === 'all' && !/\.(lora_A|lora_B|original_module)(\.|$)/.test(name)) {
      for (const [pname, p] of module.ownTensors()) if (pname === 'bias') (p as Parameter).requiresGrad = true;
    }
  }
}

/** PEFT's print_trainable_parameters line. */
export function trainableSummary(root: Module): string {
  const all = root.numParameters();
  const trainable = root.numParameters({ trainableOnly: true });
  const commas = (n: number) => n.toLocaleString('en-US');
  return `trainable params: ${commas(trainable)} || all params: ${commas(all)} || trainable%: ${((100 * trainable) / all).toFixed(4)}`;
}
