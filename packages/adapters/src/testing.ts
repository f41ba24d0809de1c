/** Paths and helpers shared by this package's tests. */
import { fileURLToPath } from 'node:url';
import type { Tensor } from '@lorakit/core';

export const REPO = fileURLToPath(new URL('../../../', import.meta.url));
export const TINY_CODE_LLAMA = `${REPO}examples/models/tiny-code-llama`;
export const MODEL_FIXTURES = `${REPO}packages/models/fixtures`;
export const PEFT_FIXTURES = `${REPO}../shared/fixtures/peft`;
export const ADAPTER_FIXTURES = `${REPO}packages/adapters/fixtures`;

/** ‖a − b‖ / ‖b‖ over all elements. */
export function relativeError(a: Tensor, b: Tensor): number {
  let diff = 0;
  let norm = 0;
  for (let i = 0; i < b.numel; i++) {
    diff += (a.values[i] - b.values[i]) ** 2;
    norm += b.values[i] ** 2;
  }
  return Math.sqrt(diff / norm);
}

export function maxAbs(a: Tensor, b: Tensor): number {
  let worst = a.numel === b.numel ? 0 : Infinity;
  for (let i = 0; i < b.numel; i++) worst = Math.max(worst, Math.abs(a.values[i] - b.values[i]));
  return worst;
}
