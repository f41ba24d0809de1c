/**
 * A merge worker (Bf16MergePool): merges the rows it is given of a bf16
 * weight held in shared memory. Messages: { id, source, merged, inp, deltas }.
 */
import { parentPort } from 'node:worker_threads';
import type { LowRankDelta } from '@lorakit/core';
import { mergeBf16Rows } from './merge-rows.ts';

interface Job {
  id: number;
  source: Uint16Array;
  merged: Uint16Array;
  inp: number;
  deltas: LowRankDelta[];
}

parentPort!.on('message', ({ id, source, merged, inp, deltas }: Job) => {
  try {
    mergeBf16Rows(source, merged, inp, deltas);
    parentPort!.postMessage({ id });
  } catch (error) {
    parentPort!.postMessage({ id, error: (error as Error).message });
  }
});
