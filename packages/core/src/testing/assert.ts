/** Numeric assertions for tests: closeness with a tolerance that reports the worst element. */
import type { Tensor } from '../tensor.ts';

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Infinity;
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
  return worst;
}

/** True when |a − b| ≤ atol + rtol·|b| everywhere. */
export function allClose(a: Tensor | ArrayLike<number>, b: Tensor | ArrayLike<number>, { atol = 1e-6, rtol = 1e-5 } = {}): boolean {
  const x = 'shape' in a ? a.toArray() : a;
  const y = 'shape' in b ? b.toArray() : b;
  if (x.length !== y.length) return false;
  for (let i = 0; i < x.length; i++) if (!(Math.abs(x[i] - y[i]) <= atol + rtol * Math.abs(y[i]))) return false;
  return true;
}

/** Largest |a − b| over the positions of [B, T, V] logits whose mask is 1. */
export function maxMaskedDiff(a: Tensor, b: Tensor, mask: Tensor): number {
  const [rows, time, vocab] = b.shape;
  const m = mask.toArray();
  let worst = 0;
  for (let p = 0; p < rows * time; p++) {
    if (m[p] === 0) continue;
    for (let v = 0; v < vocab; v++) worst = Math.max(worst, Math.abs(a.values[p * vocab + v] - b.values[p * vocab + v]));
  }
  return a.shape.join() === b.shape.join() ? worst : Infinity;
}

/** ‖a − b‖ / ‖b‖ over all elements. */
export function relativeErrorOf(a: Tensor, b: Tensor): number {
  let diff = 0;
  let norm = 0;
  for (let i = 0; i < b.numel; i++) {
    diff += (a.values[i] - b.values[i]) ** 2;
    norm += b.values[i] ** 2;
  }
  return Math.sqrt(diff / norm);
}
