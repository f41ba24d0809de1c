/**
 * A JSONL file -> tokenized training examples, optionally packed.
 *
 *   const train = await loadDataset('data/train.jsonl', tokenizer, { maxLength: 256 });
 */
import type { Tokenizer } from '../tokenizer.ts';
import { readJsonl } from './jsonl.ts';
import { tokenizeRecords, type TokenizedExample } from './examples.ts';
import { packExamples } from './batches.ts';

export interface DatasetOptions {
  maxLength: number;
  /** Concatenate examples into rows of exactly maxLength tokens. */
  packing?: boolean;
  appendEos?: boolean;
}

export async function loadDataset(file: string, tokenizer: Tokenizer, { maxLength, packing = false, appendEos = true }: DatasetOptions): Promise<TokenizedExample[]> {
  const examples = tokenizeRecords(await readJsonl(file), tokenizer, file, { maxLength, appendEos });
  if (!packing) return examples;
  const packed = packExamples(examples, maxLength);
  if (packed.length === 0) throw new Error(`${file}: too few tokens to fill one packed row of ${maxLength}`);
  return packed;
}
