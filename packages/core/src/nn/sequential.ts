/** Sequential: children named "0", "1", ..., each fed the previous one's output. */
import { Module } from '../module.ts';
import type { Tensor } from '../tensor.ts';

type TensorModule = Module & { forward(x: Tensor): Tensor };

export class Sequential extends Module {
  constructor(...modules: TensorModule[]) {
    super();
    modules.forEach((m, i) => {
      (this as unknown as Record<string, Module>)[String(i)] = m;
    });
  }

  forward(x: Tensor): Tensor {
    return this.children().reduce((h, m) => (m as TensorModule).call(h), x);
  }
}
