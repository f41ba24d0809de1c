/** Paths and comparisons shared by this package's tests. */
import { fileURLToPath } from 'node:url';

export const REPO = fileURLToPath(new URL('../../../', import.meta.url));
export const TINY_CODE_LLAMA = `${REPO}examples/models/tiny-code-llama`;
export const FIXTURES = `${REPO}packages/models/fixtures`;
export const PEFT_FIXTURES = `${REPO}packages/adapters/peft-fixtures`;
export { maxMaskedDiff } from '@lorakit/core/testing';
