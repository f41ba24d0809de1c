/** Paths and helpers shared by this package's tests. */
import { fileURLToPath } from 'node:url';
import type { Tensor } from '@lorakit/core';

export const REPO = fileURLToPath(new URL('../../../', import.meta.url));
export const TINY_CODE_LLAMA = `${REPO}examples/models/tiny-code-llama`;
export const MODEL_FIXTURES = `${REPO}packages/models/fixtures`;
export const PEFT_FIXTURES = `${REPO}packages/adapters/peft-fixtures`;
export const ADAPTER_FIXTURES = `${REPO}packages/adapters/fixtures`;

export { relativeErrorOf as relativeError } from '@lorakit/core/testing';

export function maxAbs(a: Tensor, b: Tensor): number {
  let worst = a.numel === b.numel ? 0 : Infinity;
  for (let i = 0; i < b.numel; i++) worst = Math.max(worst, Math.abs(a.values[i] - b.values[i]));
  return worst;
}
