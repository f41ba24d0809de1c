/**
 * Module: PyTorch's nn.Module tree, discovered from the module's own
 * properties in assignment order. A Module value is a child, an array of
 * Modules gives children `name.0`, `name.1`, a Parameter is a parameter, a
 * Buffer a buffer. The module's own bookkeeping (training flag, hooks) sits
 * under a symbol, which traversal never sees and clone() handles.
 *
 *   class Head extends Module {
 *     mlp = new Sequential(new Linear(4, 8), new SiLU(), new Linear(8, 1));
 *     w = new Parameter(Tensor.randn([1]));
 *     forward(x: Tensor) { return this.mlp.call(x).mul(this.w); }
 *   }
 *   new Head().namedChildren()   // [['mlp', Sequential]]
 *   new Head().namedParameters() // mlp.0.weight, mlp.0.bias, ..., w
 */
import { Buffer, Parameter } from './parameter.ts';
import { Tensor } from './tensor.ts';
import { formatShape } from './shape.ts';
import { loadStateDict, type LoadOptions, type LoadResult } from './state-dict.ts';

export type ForwardHook = (module: Module, inputs: unknown[], output: unknown) => unknown;
export type ForwardPreHook = (module: Module, inputs: unknown[]) => unknown[] | undefined | void;

export interface HookHandle {
  remove(): void;
}

function checkName(owner: Module, name: string): void {
  if (name.includes('.')) throw new Error(`${owner.constructor.name}: property name "${name}" contains a dot; dotted paths would be ambiguous`);
}

function isModuleArray(value: unknown): value is Module[] {
  return Array.isArray(value) && value.length > 0 && value.every((v) => v instanceof Module);
}

interface ModuleState {
  training: boolean;
  preHooks: Map<number, ForwardPreHook> | null;
  hooks: Map<number, ForwardHook> | null;
}

const STATE = Symbol('module state');
let nextHookId = 0;

export abstract class Module {
  [STATE]: ModuleState = { training: true, preHooks: null, hooks: null };

  abstract forward(...args: never[]): unknown;

  /** Run pre-hooks (which may replace the inputs), forward, then hooks (which may replace the output). */
  call(...args: Parameters<this['forward']>): ReturnType<this['forward']> {
    const { preHooks, hooks } = this[STATE];
    if (preHooks === null && hooks === null) return (this.forward as (...a: unknown[]) => ReturnType<this['forward']>)(...args);
    let inputs: unknown[] = args;
    for (const hook of preHooks?.values() ?? []) inputs = hook(this, inputs) ?? inputs;
    let output = (this.forward as (...a: unknown[]) => unknown)(...inputs);
    for (const hook of hooks?.values() ?? []) {
      const replaced = hook(this, inputs, output);
      if (replaced !== undefined) output = replaced;
    }
    return output as ReturnType<this['forward']>;
  }

  registerForwardHook(hook: ForwardHook): HookHandle {
    return register(this[STATE], 'hooks', hook);
  }

  registerForwardPreHook(hook: ForwardPreHook): HookHandle {
    return register(this[STATE], 'preHooks', hook);
  }

  /** Whether this module (not its children) has forward hooks or pre-hooks. */
  hasForwardHooks(): boolean {
    const { preHooks, hooks } = this[STATE];
    return (preHooks?.size ?? 0) + (hooks?.size ?? 0) > 0;
  }

  /**
   * State besides parameters, buffers and the training flag that changes what forward computes (a LoRA layer's
   * active adapters and merged flag): a compiled block traced with another key is traced again.
   */
  compileKey(): string {
    return '';
  }

  /**
   * Tensors computed from this module's state that its forward reads as they are (a 4-bit layer's absmax
   * expanded to float): sources of a compiled block, like buffers. The same objects until the state changes.
   */
  derivedTensors(): Array<[string, Tensor]> {
    return [];
  }

  // ---- the tree ----

  /** Immediate sub-modules as [name, module], in assignment order. */
  namedChildren(): Array<[string, Module]> {
    const children: Array<[string, Module]> = [];
    for (const [name, value] of Object.entries(this)) {
      if (value instanceof Module) {
        checkName(this, name);
        children.push([name, value]);
      } else if (isModuleArray(value)) {
        checkName(this, name);
        value.forEach((m, i) => children.push([`${name}.${i}`, m]));
      }
    }
    return children;
  }

  children(): Module[] {
    return this.namedChildren().map(([, m]) => m);
  }

  /** The whole tree, self first (name ''), each module once even if shared. */
  namedModules(prefix = '', seen = new Set<Module>()): Array<[string, Module]> {
    if (seen.has(this)) return [];
    seen.add(this);
    const result: Array<[string, Module]> = [[prefix, this]];
    for (const [name, child] of this.namedChildren()) result.push(...child.namedModules(prefix ? `${prefix}.${name}` : name, seen));
    return result;
  }

  modules(): Module[] {
    return this.namedModules().map(([, m]) => m);
  }

  /** This module's own Parameters and Buffers (not its children's). */
  ownTensors(): Array<[string, Parameter | Buffer]> {
    const own: Array<[string, Parameter | Buffer]> = [];
    for (const [name, value] of Object.entries(this)) {
      if (value instanceof Parameter || value instanceof Buffer) {
        checkName(this, name);
        own.push([name, value]);
      }
    }
    return own;
  }

  /** Every parameter once (a tied weight under its first name). */
  namedParameters(): Array<[string, Parameter]> {
    return namedTensors(this, (t) => t instanceof Parameter) as Array<[string, Parameter]>;
  }

  parameters(): Parameter[] {
    return this.namedParameters().map(([, p]) => p);
  }

  namedBuffers(): Array<[string, Buffer]> {
    return namedTensors(this, (t) => t instanceof Buffer) as Array<[string, Buffer]>;
  }

  buffers(): Buffer[] {
    return this.namedBuffers().map(([, b]) => b);
  }

  numParameters({ trainableOnly = false } = {}): number {
    return this.parameters().reduce((n, p) => n + (trainableOnly && !p.requiresGrad ? 0 : p.numel), 0);
  }

  // ---- paths ----

  getSubmodule(path: string): Module {
    let module: Module = this;
    const parts = path === '' ? [] : path.split('.');
    for (let i = 0; i < parts.length; i++) {
      // A child is a property or a ModuleDict key ("mlp"), or an array entry ("layers.0").
      const children = new Map(module.namedChildren());
      const entry = !children.has(parts[i]) && /^\d+$/.test(parts[i + 1] ?? '');
      const name = entry ? `${parts[i]}.${parts[i + 1]}` : parts[i];
      const child = children.get(name);
      if (child === undefined) {
        const names = [...children.keys()].join(', ') || 'none';
        throw new Error(`getSubmodule: ${module.constructor.name} at "${parts.slice(0, i).join('.')}" has no submodule "${name}" (children: ${names})`);
      }
      if (entry) i++;
      module = child;
    }
    return module;
  }

  /** Replace (or add) the module at a dotted path; `layers.0` replaces an array entry. */
  setSubmodule(path: string, module: Module): void {
    const parts = path.split('.');
    const name = parts.pop()!;
    if (name === '') throw new Error(`setSubmodule: empty name in path "${path}"`);
    if (/^\d+$/.test(name) && parts.length > 0) {
      const listName = parts[parts.length - 1];
      const owner = this.getSubmodule(parts.slice(0, -1).join('.')) as unknown as Record<string, unknown>;
      const list = Object.hasOwn(owner, listName) ? owner[listName] : undefined;
      if (isModuleArray(list) && Number(name) < list.length) {
        list[Number(name)] = module;
        return;
      }
    }
    this.getSubmodule(parts.join('.')).setChild(name, module);
  }

  /** Put `module` under the child name `name`: a property here (ModuleDict keeps its keys apart). */
  protected setChild(name: string, module: Module): void {
    checkName(this, name);
    if (name in this && !Object.hasOwn(this, name)) {
      throw new Error(`${this.constructor.name}: "${name}" is a method or accessor of the class; a child cannot take that name`);
    }
    (this as unknown as Record<string, unknown>)[name] = module;
  }

  // ---- state ----

  /** Every parameter and persistent buffer under every name it has (tied weights twice, as in PyTorch). */
  stateDict(): Map<string, Tensor> {
    const entries = new Map<string, Tensor>();
    const visit = (module: Module, prefix: string) => {
      for (const [name, tensor] of module.ownTensors()) {
        if (tensor instanceof Buffer && !tensor.persistent) continue;
        entries.set(prefix + name, tensor);
      }
      for (const [name, child] of module.namedChildren()) visit(child, `${prefix}${name}.`);
    };
    visit(this, '');
    return entries;
  }

  /** Copy tensors in. Strict (the default) throws one error listing every problem. */
  loadStateDict(source: Map<string, Tensor> | Record<string, Tensor>, options: LoadOptions = {}): LoadResult {
    return loadStateDict(this.stateDict(), source, options);
  }

  // ---- modes and bulk operations ----

  get training(): boolean {
    return this[STATE].training;
  }

  train(mode = true): this {
    for (const m of this.modules()) m[STATE].training = mode;
    return this;
  }

  /**
   * A deep copy: sub-modules and parameters copied (a tied pair stays tied
   * within the copy), hooks not copied, everything else shared. Subclasses
   * that keep #private state must override this.
   */
  clone(copies = new Map<object, object>()): this {
    const copy = Object.create(Object.getPrototypeOf(this)) as this;
    copies.set(this, copy);
    const copyValue = (value: unknown): unknown => {
      if (value instanceof Module) return copies.get(value) ?? value.clone(copies);
      if (value instanceof Parameter || value instanceof Buffer) {
        if (!copies.has(value)) {
          const data = value.clone();
          copies.set(value, value instanceof Parameter ? new Parameter(data, value.requiresGrad) : new Buffer(data, value.persistent));
        }
        return copies.get(value);
      }
      return isModuleArray(value) ? value.map(copyValue) : value;
    };
    for (const key of Reflect.ownKeys(this)) {
      const value = (this as Record<PropertyKey, unknown>)[key];
      (copy as Record<PropertyKey, unknown>)[key] = key === STATE ? { training: this.training, preHooks: null, hooks: null } : copyValue(value);
    }
    return copy;
  }

  eval(): this {
    return this.train(false);
  }

  /** Children first, then self (PyTorch's order). */
  apply(fn: (module: Module) => void): this {
    for (const child of this.children()) child.apply(fn);
    fn(this);
    return this;
  }

  requiresGrad_(flag = true): this {
    for (const p of this.parameters()) p.requiresGrad = flag;
    return this;
  }

  freeze(): this {
    return this.requiresGrad_(false);
  }

  unfreeze(): this {
    return this.requiresGrad_(true);
  }

  /** Drop every parameter's gradient. */
  zeroGrad(): void {
    for (const p of this.parameters()) p.grad = null;
  }

  /** Shown inside the parentheses of toString(), like PyTorch's extra_repr. */
  extraRepr(): string {
    return '';
  }

  /** The tree as PyTorch prints it. */
  toString(): string {
    const children = this.namedChildren();
    const head = `${this.constructor.name}(${this.extraRepr()}`;
    if (children.length === 0) return `${head})`;
    const lines = children.map(([name, child]) => `  (${name}): ${child.toString().replaceAll('\n', '\n  ')}`);
    return `${head}\n${lines.join('\n')}\n)`;
  }
}

// NOTE: helpers live outside the class (no #private members), so clone() can copy any Module.
function register<K extends 'hooks' | 'preHooks'>(state: ModuleState, kind: K, hook: NonNullable<ModuleState[K]> extends Map<number, infer H> ? H : never): HookHandle {
  const id = nextHookId++;
  ((state[kind] ??= new Map()) as Map<number, unknown>).set(id, hook);
  return {
    remove: () => {
      state[kind]?.delete(id);
      if (state[kind]?.size === 0) state[kind] = null;
    },
  };
}

/** Each tensor once, under the first name the tree gives it. */
function namedTensors(root: Module, keep: (t: Tensor) => boolean): Array<[string, Tensor]> {
  const seen = new Set<Tensor>();
  const result: Array<[string, Tensor]> = [];
  for (const [path, module] of root.namedModules()) {
    for (const [name, tensor] of module.ownTensors()) {
      if (!keep(tensor) || seen.has(tensor)) continue;
      seen.add(tensor);
      result.push([path ? `${path}.${name}` : name, tensor]);
    }
  }
  return result;
}
