/**
 * clipGradNorm_: scale all gradients so their joint L2 norm is at most
 * maxNorm (coefficient maxNorm / (norm + 1e-6), as PyTorch). Returns the norm
 * before clipping.
 */
import type { Parameter } from '../parameter.ts';

export function clipGradNorm_(params: Iterable<Parameter>, maxNorm: number): number {
  const grads = [...params].flatMap((p) => (p.grad === null ? [] : [p.grad.values]));
  let squares = 0;
  for (const g of grads) {
    let partial = 0; // per-tensor norms first, like torch's _foreach_norm
    for (let i = 0; i < g.length; i++) partial += g[i] * g[i];
    squares += Math.fround(Math.sqrt(partial)) ** 2;
  }
  const norm = Math.fround(Math.sqrt(squares));
  const coefficient = Math.fround(maxNorm / (norm + 1e-6));
  if (coefficient < 1) {
    for (const g of grads) for (let i = 0; i < g.length; i++) g[i] = Math.fround(g[i] * coefficient);
  }
  return norm;
}
