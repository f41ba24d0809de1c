/** Paths and comparisons shared by this package's tests. */
import { fileURLToPath } from 'node:url';
import type { Tensor } from '@lorakit/core';

export const REPO = fileURLToPath(new URL('../../../', import.meta.url));
export const TINY_CODE_LLAMA = `${REPO}examples/models/tiny-code-llama`;
export const FIXTURES = `${REPO}packages/models/fixtures`;
export const PEFT_FIXTURES = `${REPO}../shared/fixtures/peft`;

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
