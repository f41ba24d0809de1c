/**
 * A worker thread that quantizes weights, for quantizeParallel: bandwidth
 * work split across cores. Messages: { id, values, type, blockSize, doubleQuant }.
 */
import { parentPort } from 'node:worker_threads';
import { quantize4bit } from './blockwise-4bit.ts';
import { doubleQuantize } from './double-quant.ts';
import type { QuantType } from './codebooks.ts';

interface Job {
  id: number;
  values: Float32Array;
  type: QuantType;
  blockSize: number;
  doubleQuant: boolean;
}

parentPort!.on('message', ({ id, values, type, blockSize, doubleQuant }: Job) => {
  const { packed, absmax } = quantize4bit(values, type, blockSize);
  const double = doubleQuant ? doubleQuantize(absmax) : null;
  const transfer = [packed.buffer, absmax.buffer, ...(double ? [double.quantized.buffer, double.nestedAbsmax.buffer] : [])] as ArrayBuffer[];
  parentPort!.postMessage({ id, packed, absmax, double }, transfer);
});
