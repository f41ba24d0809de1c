/**
 * Activation checkpointing: run `fn` without keeping its intermediate
 * activations, and run it again during the backward to get its gradients.
 * Memory drops to the inputs and outputs of each checkpointed block, at the
 * cost of a second forward (torch.utils.checkpoint).
 *
 *   h = checkpoint((x) => layer.call(x, rotary, bias), h);
 *
 * Parameters used inside `fn` receive their gradients during the recomputation.
 */
import { enableGrad, noGrad, record } from './autograd.ts';
import { Tensor } from './tensor.ts';

export function checkpoint(fn: (...inputs: Tensor[]) => Tensor, ...inputs: Tensor[]): Tensor {
  const out = noGrad(() => fn(...inputs));
  let grads: Array<Tensor | null> | null = null;
  const recompute = (g: Tensor): Array<Tensor | null> => {
    if (grads !== null) return grads;
    const leaves = inputs.map((x) => (x.isFloat ? x.detach().requiresGrad_(x.requiresGrad) : x));
    enableGrad(() => {
      const y = fn(...leaves);
      if (y.requiresGrad) y.backward(g);
    });
    grads = leaves.map((leaf) => leaf.grad);
    return grads;
  };
  return record('checkpoint', out, inputs, (g) =>
    inputs.map((x, i) => () => recompute(g)[i] ?? Tensor.zeros(x.shape, x.dtype)),
  );
}
