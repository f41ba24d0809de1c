/**
 * What ModuleDict and ParameterDict share: entries under string keys without
 * dots, kept in a Map rather than on properties, so a key never collides with
 * the module's own members (`get`, `training`, `constructor`, `__proto__`).
 * Each subclass shows its entries to the tree its own way (as children, or as
 * its own tensors) and says how an entry is copied by clone().
 */
import { Module } from '../module.ts';

const ENTRIES = Symbol('dict entries');

export abstract class KeyedDict<V> extends Module {
  [ENTRIES] = new Map<string, V>();

  /** The kind of value an entry holds, for errors: 'Module', 'Parameter'. */
  protected abstract readonly entryKind: string;
  protected abstract accepts(value: unknown): value is V;
  /** An entry's copy for clone(), shared through `copies` as Module.clone shares. */
  protected abstract copyEntry(value: V, copies: Map<object, object>): V;

  set(key: string, value: V): void {
    const name = this.constructor.name;
    if (typeof key !== 'string' || key === '' || key.includes('.')) throw new Error(`${name}: key "${String(key)}" must be non-empty and without dots`);
    if (!this.accepts(value)) throw new Error(`${name}: the value for "${key}" is not a ${this.entryKind}`);
    this[ENTRIES].set(key, value);
  }

  get(key: string): V | undefined {
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

  values(): V[] {
    return [...this[ENTRIES].values()];
  }

  entries(): Array<[string, V]> {
    return [...this[ENTRIES]];
  }

  get size(): number {
    return this[ENTRIES].size;
  }

  override clone(copies = new Map<object, object>()): this {
    const copy = super.clone(copies); // shares the Map for a moment; the copy gets its own below
    copy[ENTRIES] = new Map([...this[ENTRIES]].map(([key, value]) => [key, this.copyEntry(value, copies)]));
    return copy;
  }

  forward(): never {
    throw new Error(`${this.constructor.name} has no forward; use its entries`);
  }
}
