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
import { KeyedDict } from './keyed-dict.ts';

export class ModuleDict<M extends Module = Module> extends KeyedDict<M> {
  protected readonly entryKind = 'Module';

  /** From an object's own keys, or from [key, module] pairs (a Map) when a key is `__proto__`. */
  constructor(entries: Record<string, M> | Iterable<readonly [string, M]> = {}) {
    super();
    const pairs = Symbol.iterator in entries ? (entries as Iterable<readonly [string, M]>) : Object.entries(entries);
    for (const [key, module] of pairs) this.set(key, module);
  }

  protected accepts(value: unknown): value is M {
    return value instanceof Module;
  }

  protected copyEntry(module: M, copies: Map<object, object>): M {
    return (copies.get(module) as M | undefined) ?? module.clone(copies);
  }

  /** Properties first (a subclass may add some), then the entries in insertion order. */
  override namedChildren(): Array<[string, Module]> {
    return [...super.namedChildren(), ...this.entries()];
  }

  protected override setChild(name: string, module: Module): void {
    this.set(name, module as M);
  }
}
