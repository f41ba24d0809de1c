/**
 * bf16 weights merged on every core: each worker (merge-worker.ts) takes a
 * contiguous share of the rows of a weight in shared memory.
 *
 *   const pool = new Bf16MergePool();
 *   const source = await checkpoint.readBytes(name, pool.input(bytes));
 *   const merged = await pool.merge(source, [out, inp], deltas);   // bf16 bytes
 *   await pool.close();
 *
 * The pool owns that memory: two input buffers used in turn, so the next
 * weight is read while this one is merged, and two output buffers used in
 * turn, so a merged weight stays intact while it is written and the next one
 * is merged. Workers start on the first merge, or earlier with start().
 */
import { availableParallelism } from 'node:os';
import type { Worker } from 'node:worker_threads';
import { typeScriptWorker, type LowRankDelta } from '@lorakit/core';

const shared = (bytes: number) => new Uint8Array(new SharedArrayBuffer(bytes));

export class Bf16MergePool {
  #workers: Worker[] = [];
  #inputs = [shared(0), shared(0)];
  #outputs = [shared(0), shared(0)];
  #inputTurn = 0;
  #outputTurn = 0;
  #nextId = 0;
  /** Why a worker stopped, if one did: later merges fail at once instead of waiting for it. */
  #failure: Error | undefined;
  readonly #pending = new Map<number, { resolve: () => void; reject: (error: Error) => void }>();

  constructor(readonly threads = availableParallelism()) {}

  /** Starts the workers now (each takes about 0.3 s to load), to overlap that with other work. */
  start(): void {
    this.#worker(this.threads - 1);
  }

  /** A shared buffer of `bytes` bytes to read the next weight into; valid until the input after next. */
  input(bytes: number): Uint8Array {
    this.#inputTurn ^= 1;
    if (this.#inputs[this.#inputTurn].length < bytes) this.#inputs[this.#inputTurn] = shared(bytes);
    return this.#inputs[this.#inputTurn].subarray(0, bytes);
  }

  /** bf16(source + Σ factor·B·A) for a bf16 weight [out, inp] read into input(); valid until the merge after next. */
  async merge(source: Uint8Array, [out, inp]: [number, number], deltas: LowRankDelta[]): Promise<Uint8Array> {
    this.#outputTurn ^= 1;
    if (this.#outputs[this.#outputTurn].length < source.length) this.#outputs[this.#outputTurn] = shared(source.length);
    const merged = this.#outputs[this.#outputTurn].subarray(0, source.length);
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
