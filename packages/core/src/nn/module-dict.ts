/**
 * ModuleDict: children under string keys (PyTorch's nn.ModuleDict), e.g.
 * one LoRA matrix per adapter name: `lora_A.default.weight`.
 */
import { Module } from '../module.ts';

export class ModuleDict<M extends Module = Module> extends Module {
  constructor(entries: Record<string, M> = {}) {
    super();
    for (const [key, module] of Object.entries(entries)) this.set(key, module);
  }

  set(key: string, module: M): void {
    if (key === '' || key.includes('.')) throw new Error(`ModuleDict: key "${key}" must be non-empty and without dots`);
    (this as unknown as Record<string, M>)[key] = module;
  }

  get(key: string): M | undefined {
    const value = (this as unknown as Record<string, unknown>)[key];
    return value instanceof Module ? (value as M) : undefined;
  }

  has(key: string): boolean {
    return this.get(key) !== undefined;
  }

  delete(key: string): void {
    delete (this as unknown as Record<string, unknown>)[key];
  }

  keys(): string[] {
    return this.namedChildren().map(([k]) => k);
  }

  forward(): never {
    throw new Error('ModuleDict has no forward; call one of its modules');
  }
}
