/**
 * Finding the silent mistakes of the nn.Module tutorial: tensors that look
 * trainable but are not registered, so they never reach the optimizer.
 *
 *   class Head extends Module { w = Tensor.randn([3]).requiresGrad_(); ... }
 *   findUnregisteredTensors(head)  // [{ path: 'w', reason: 'a plain Tensor ...' }]
 */
import { Module } from './module.ts';
import { Buffer, Parameter } from './parameter.ts';
import { Tensor } from './tensor.ts';

export interface UnregisteredTensor {
  path: string;
  reason: string;
}

function inspect(value: unknown, path: string, found: UnregisteredTensor[]): void {
  if (value instanceof Parameter || value instanceof Buffer) {
    found.push({ path, reason: 'a Parameter inside an array or object is not registered; assign it to a module property' });
  } else if (value instanceof Tensor) {
    if (value.requiresGrad) found.push({ path, reason: 'a plain Tensor with requiresGrad is not a parameter; wrap it in new Parameter(...)' });
  } else if (value instanceof Module) {
    found.push({ path, reason: 'a Module inside an object or Map is not a child; assign it to a property or an array of modules' });
  } else if (Array.isArray(value)) {
    value.forEach((v, i) => inspect(v, `${path}.${i}`, found));
  } else if (value instanceof Map) {
    for (const [k, v] of value) inspect(v, `${path}.${String(k)}`, found);
  } else if (value !== null && typeof value === 'object' && Object.getPrototypeOf(value) === Object.prototype) {
    for (const [k, v] of Object.entries(value)) inspect(v, `${path}.${k}`, found);
  }
}

/** Tensors and modules on the tree's properties that traversal does not see. */
export function findUnregisteredTensors(root: Module): UnregisteredTensor[] {
  const found: UnregisteredTensor[] = [];
  for (const [prefix, module] of root.namedModules()) {
    for (const [name, value] of Object.entries(module)) {
      if (value instanceof Module || value instanceof Parameter || value instanceof Buffer) continue;
      if (Array.isArray(value) && value.length > 0 && value.every((v) => v instanceof Module)) continue;
      inspect(value, prefix ? `${prefix}.${name}` : name, found);
    }
  }
  return found;
}

export interface NonFiniteTensor {
  name: string;
  /** How many of its values are NaN or ±Infinity. */
  count: number;
}

/** Float tensors of the state dict holding NaN or Infinity (a tied one once): a broken checkpoint or a diverged run. */
export function findNonFiniteTensors(root: Module): NonFiniteTensor[] {
  const found: NonFiniteTensor[] = [];
  const seen = new Set<Tensor>();
  for (const [name, tensor] of root.stateDict()) {
    if (!tensor.isFloat || seen.has(tensor)) continue;
    seen.add(tensor);
    let count = 0;
    for (const v of tensor.values) if (v - v !== 0) count++; // NaN and ±Infinity give NaN
    if (count > 0) found.push({ name, count });
  }
  return found;
}
