/**
 * modules_to_save: a module trained in full next to the adapter (a new head,
 * say). Like PEFT's ModulesToSaveWrapper, the original stays as
 * `original_module` and a trainable copy per adapter sits in
 * `modules_to_save.<adapter>`; the active adapter's copy runs.
 */
import { Module } from '@lorakit/core';
import { ModuleDict } from '@lorakit/core/nn';

type Callable = Module & { call(...args: unknown[]): unknown };

export class ModulesToSaveWrapper extends Module {
  original_module: Module;
  modules_to_save = new ModuleDict();
  activeAdapter: string | null = null;
  disabled = false;

  constructor(original: Module) {
    super();
    this.original_module = original;
  }

  addAdapter(name: string): void {
    const copy = this.original_module.clone();
    copy.unfreeze();
    this.modules_to_save.set(name, copy);
  }

  override compileKey(): string {
    return `${this.disabled}|${this.activeAdapter}`;
  }

  /** The module that runs: the active copy, or the original when disabled. */
  get current(): Module {
    return this.disabled || this.activeAdapter === null ? this.original_module : (this.modules_to_save.get(this.activeAdapter) ?? this.original_module);
  }

  forward(...args: unknown[]): unknown {
    return (this.current as Callable).call(...args);
  }
}
