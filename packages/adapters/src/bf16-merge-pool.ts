/**
 * bf16 weights merged on every core: each worker (merge-worker.ts) takes a
 * contiguous share of the rows of a weight in shared memory.
 *
 *   const pool = new Bf16MergePool({ slots: 4 });
 *   const source = await checkpoint.readBytes(name, pool.input(slot, bytes));
 *   const merged = await pool.merge(slot, source, [out, inp], deltas);   // bf16 bytes
 *   await pool.close();
 *
 * The pool owns that memory, in slots of an input and an output buffer: a
 * stream of weights uses them in turn, so that while one weight is merged
 * others are read or written. A slot's buffers stay intact until the slot is
 * used again. Workers start on the first merge, or earlier with start().
 */
import { availableParallelism } from 'node:os';
import type { Worker } from 'node:worker_threads';
import { typeScriptWorker, type LowRankDelta } from '@lorakit/core';

const shared = (bytes: number) => new Uint8Array(new SharedArrayBuffer(bytes));

export class Bf16MergePool {
  #workers: Worker[] = [];
  readonly threads: number;
  readonly slots: number;
  readonly #inputs: Uint8Array[];
  readonly #outputs: Uint8Array[];
  #nextId = 0;
  /** Why a worker stopped, if one did: later merges fail at once instead of waiting for it. */
  #failure: Error | undefined;
  readonly #pending = new Map<number, { resolve: () => void; reject: (error: Error) => void }>();

  constructor({ threads = availableParallelism(), slots = 2 } = {}) {
    [this.threads, this.slots] = [threads, slots];
    this.#inputs = Array.from({ length: slots }, () => shared(0));
    this.#outputs = Array.from({ length: slots }, () => shared(0));
  }

  /** Starts the workers now (each takes about 0.3 s to load), to overlap that with other work. */
  start(): void {
    this.#worker(this.threads - 1);
  }

  /** The input buffer of a slot, `bytes` long, to read a weight into. */
  input(slot: number, bytes: number): Uint8Array {
    if (this.#inputs[slot].length < bytes) this.#inputs[slot] = shared(bytes);
    return this.#inputs[slot].subarray(0, bytes);
  }

  /** bf16(source + Σ factor·B·A) for a bf16 weight [out, inp] read into the slot's input, in the slot's output buffer. */
  async merge(slot: number, source: Uint8Array, [out, inp]: [number, number], deltas: LowRankDelta[]): Promise<Uint8Array> {
    if (this.#outputs[slot].length < source.length) this.#outputs[slot] = shared(source.length);
    const merged = this.#outputs[slot].subarray(0, source.length);
    const rowsOf = (bytes: Uint8Array, from: number, to: number) => new Uint16Array(bytes.buffer, bytes.byteOffset + from * inp * 2, (to - from) * inp);
    const parts = Math.min(this.threads, out);
    await Promise.all(Array.from({ length: parts }, (_, p) => {
      const [from, to] = [Math.floor((out * p) / parts), Math.floor((out * (p + 1)) / parts)];
      // A and B are copied (small); the weight's rows are shared.
      const rowDeltas = deltas.map(({ a, b, r, factor }) => ({ a: a.slice(), b: b.slice(from * r, to * r), r, factor }));
      return this.#run(p, { source: rowsOf(source, from, to), merged: rowsOf(merged, from, to), inp, deltas: rowDeltas });
    }));
    return merged;
  }

  async close(): Promise<void> {
    this.#failure ??= new Error('the merge pool is closed');
    await Promise.all(this.#workers.map((w) => w.terminate()));
    this.#workers = [];
  }

  #run(worker: number, job: { source: Uint16Array; merged: Uint16Array; inp: number; deltas: LowRankDelta[] }): Promise<void> {
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      if (this.#failure) return reject(this.#failure);
      this.#pending.set(id, { resolve, reject });
      this.#worker(worker).postMessage({ id, ...job });
    });
  }

  #worker(index: number): Worker {
    while (this.#workers.length <= index) {
      const worker = typeScriptWorker(new URL('./merge-worker.ts', import.meta.url));
      worker.on('message', ({ id, error }: { id: number; error?: string }) => {
        const job = this.#pending.get(id)!;
        this.#pending.delete(id);
        if (error === undefined) job.resolve();
        else job.reject(new Error(`merge worker: ${error}`));
      });
      worker.on('error', (error) => this.#failAll(error));
      worker.on('exit', (code) => this.#failAll(new Error(`merge worker exited with code ${code}`)));
      this.#workers.push(worker);
    }
    return this.#workers[index];
  }

  #failAll(error: Error): void {
    this.#failure ??= error;
    for (const job of this.#pending.values()) job.reject(error);
    this.#pending.clear();
  }
}
