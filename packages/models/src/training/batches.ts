/**
 * Examples -> padded batches, in an order shuffled from the seed and the
 * epoch alone, so a resumed run sees exactly the batches an uninterrupted one
 * would. Right padding (pad id, mask 0, label -100). With packing, examples
 * are concatenated into rows of exactly maxLength tokens first.
 */
import { Generator, Tensor } from '@lorakit/core';
import type { TokenizedExample } from './examples.ts';

export interface Batch {
  inputIds: Tensor; // [B, T] int32
  attentionMask: Tensor;
  labels: Tensor;
  /** Tokens with a label (what the loss averages over). */
  tokens: number;
}

/** Position in the data: which epoch, and how many batches of it are done. */
export interface DataPosition {
  epoch: number;
  batch: number;
}

/** Greedy packing: one token stream cut into rows of maxLength (the tail shorter than a row is dropped). */
export function packExamples(examples: TokenizedExample[], maxLength: number): TokenizedExample[] {
  const ids = examples.flatMap((e) => e.inputIds);
  const labels = examples.flatMap((e) => e.labels);
  const rows: TokenizedExample[] = [];
  for (let at = 0; at + maxLength <= ids.length; at += maxLength) rows.push({ inputIds: ids.slice(at, at + maxLength), labels: labels.slice(at, at + maxLength) });
  return rows;
}

export class BatchSchedule {
  /** `padToMultipleOf`: each batch as wide as its longest example, rounded up to a multiple of this. */
  constructor(readonly examples: TokenizedExample[], readonly batchSize: number, readonly seed: number, readonly padTokenId: number, readonly shuffle = true, readonly padToMultipleOf = 1) {
    if (examples.length === 0) throw new Error('no training examples');
    if (!(Number.isInteger(batchSize) && batchSize > 0)) throw new Error(`batchSize must be a positive integer, got ${batchSize}`);
  }

  get batchesPerEpoch(): number {
    return Math.ceil(this.examples.length / this.batchSize);
  }

  /** The example order of an epoch: a Fisher-Yates shuffle seeded by (seed, epoch). */
  order(epoch: number): number[] {
    const order = this.examples.map((_, i) => i);
    if (!this.shuffle) return order;
    const rng = new Generator((this.seed * 1_000_003 + epoch) >>> 0);
    for (let i = order.length - 1; i > 0; i--) {
      const j = rng.int(i + 1);
      [order[i], order[j]] = [order[j], order[i]];
    }
    return order;
  }

  batch({ epoch, batch }: DataPosition): Batch {
    const indices = this.order(epoch).slice(batch * this.batchSize, (batch + 1) * this.batchSize);
    return collate(indices.map((i) => this.examples[i]), this.padTokenId, this.padToMultipleOf);
  }

  /** Batches from a position to the end of its epoch, then the following epochs. */
  *from(position: DataPosition): IterableIterator<[DataPosition, Batch]> {
    for (let epoch = position.epoch; ; epoch++) {
      for (let b = epoch === position.epoch ? position.batch : 0; b < this.batchesPerEpoch; b++) yield [{ epoch, batch: b }, this.batch({ epoch, batch: b })];
    }
  }
}

/** Right-padded rows as wide as the longest example, rounded up to a multiple of `multiple` (fewer shapes to compile). */
export function collate(examples: TokenizedExample[], padTokenId: number, multiple = 1): Batch {
  const width = Math.ceil(Math.max(...examples.map((e) => e.inputIds.length)) / multiple) * multiple;
  const pad = (values: number[], fill: number) => [...values, ...new Array<number>(width - values.length).fill(fill)];
  const tokens = examples.reduce((n, e) => n + e.labels.slice(1).filter((l) => l !== -100).length, 0);
  return {
    inputIds: Tensor.fromArray(examples.map((e) => pad(e.inputIds, padTokenId)), 'int32'),
    attentionMask: Tensor.fromArray(examples.map((e) => pad(e.inputIds.map(() => 1), 0)), 'int32'),
    labels: Tensor.fromArray(examples.map((e) => pad(e.labels, -100)), 'int32'),
    tokens,
  };
}
