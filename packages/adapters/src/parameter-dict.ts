/**
 * ParameterDict: parameters under string keys (PyTorch's nn.ParameterDict),
 * the container PEFT keeps embedding LoRA factors in, so their names carry no
 * `.weight`: `lora_embedding_A.default`, saved as `lora_embedding_A`.
 *
 *   const dict = new ParameterDict();
 *   dict.set('default', new Parameter(Tensor.zeros([4, 128])));
 *   dict.ownTensors()   // [['default', Parameter]]
 *
 * The entries live in a Map, as ModuleDict's do, so a key never collides with
 * a member; the tree sees them through ownTensors().
 */
import { Module, Parameter, type Buffer } from '@lorakit/core';

const ENTRIES = Symbol('parameter dict entries');

export class ParameterDict extends Module {
  [ENTRIES] = new Map<string, Parameter>();

  set(key: string, parameter: Parameter): void {
    if (typeof key !== 'string' || key === '' || key.includes('.')) throw new Error(`ParameterDict: key "${String(key)}" must be non-empty and without dots`);
    if (!(parameter instanceof Parameter)) throw new Error(`ParameterDict: the value for "${key}" is not a Parameter`);
    this[ENTRIES].set(key, parameter);
  }

  get(key: string): Parameter | undefined {
    return this[ENTRIES].get(key);
  }

  has(key: string): boolean {
    return this[ENTRIES].has(key);
  }

  delete(key: string): boolean {
    return this[ENTRIES].delete(key);
  }

  keys(): string[] {
    return [...this[ENTRIES].keys()];
  }

  override ownTensors(): Array<[string, Parameter | Buffer]> {
    return [...super.ownTensors(), ...this[ENTRIES]];
  }

  override clone(copies = new Map<object, object>()): this {
    const copy = super.clone(copies); // shares the Map for a moment; the copy gets its own below
    copy[ENTRIES] = new Map([...this[ENTRIES]].map(([key, p]) => {
      if (!copies.has(p)) copies.set(p, new Parameter(p.clone(), p.requiresGrad));
      return [key, copies.get(p) as Parameter];
    }));
    return copy;
  }

  forward(): never {
    throw new Error('ParameterDict has no forward; read its parameters');
  }
}
