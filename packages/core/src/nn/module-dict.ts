/**
 * ModuleDict: children under string keys (PyTorch's nn.ModuleDict), e.g.
 * one LoRA matrix per adapter name: `lora_A.default.weight`.
 *
 *   const dict = new ModuleDict({ default: new Linear(4, 2) });
 *   dict.set('keys', new Linear(4, 2));   // any key without a dot, even a method's name
 *   dict.namedChildren()                  // [['default', Linear], ['keys', Linear]]
 *
 * The entries live in a Map, not on properties, so a key never collides with
 * the module's own members (`get`, `training`, `constructor`, `__proto__`);
 * the tree sees them through namedChildren().
 */
import { Module } from '../module.ts';

const ENTRIES = Symbol('module dict entries');

export class ModuleDict<M extends Module = Module> extends Module {
  [ENTRIES] = new Map<string, M>();

  /** From an object's own keys, or from [key, module] pairs (a Map) when a key is `__proto__`. */
  constructor(entries: Record<string, M> | Iterable<readonly [string, M]> = {}) {
    super();
    const pairs = Symbol.iterator in entries ? (entries as Iterable<readonly [string, M]>) : Object.entries(entries);
    for (const [key, module] of pairs) this.set(key, module);
  }

  set(key: string, module: M): void {
    if (typeof key !== 'string' || key === '' || key.includes('.')) throw new Error(`ModuleDict: key "${String(key)}" must be non-empty and without dots`);
    if (!(module instanceof Module)) throw new Error(`ModuleDict: the value for "${key}" is not a Module`);
    this[ENTRIES].set(key, module);
  }

  get(key: string): M | undefined {
    return this[ENTRIES].get(key);
  }

  has(key: string): boolean {
    return this[ENTRIES].has(key);
  }

  /** Remove an entry; true if there was one. */
  delete(key: string): boolean {
    return this[ENTRIES].delete(key);
  }

  keys(): string[] {
    return [...this[ENTRIES].keys()];
  }

  values(): M[] {
    return [...this[ENTRIES].values()];
  }

  entries(): Array<[string, M]> {
    return [...this[ENTRIES]];
  }

  get size(): number {
    return this[ENTRIES].size;
  }

  /** Properties first (a subclass may add some), then the entries in insertion order. */
  override namedChildren(): Array<[string, Module]> {
    return [...super.namedChildren(), ...this[ENTRIES]];
  }

  protected override setChild(name: string, module: Module): void {
    this.set(name, module as M);
  }

  override clone(copies = new Map<object, object>()): this {
    const copy = super.clone(copies); // shares the Map for a moment; the copy gets its own below
    copy[ENTRIES] = new Map([...this[ENTRIES]].map(([key, module]) => [key, (copies.get(module) as M | undefined) ?? module.clone(copies)]));
    return copy;
  }

  forward(): never {
    throw new Error('ModuleDict has no forward; call one of its modules');
  }
}
