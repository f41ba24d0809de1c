/**
 * bf16 weights merged on every core: each worker (merge-worker.ts) takes a
 * contiguous share of the rows of a weight in shared memory.
 *
 *   const pool = new Bf16MergePool({ slots: 4 });
 *   await checkpoint.readBytes(name, pool.input(slot, bytes));
 *   const merged = await pool.merge(slot, [out, inp], deltas);   // bf16 bytes
 *   await pool.close();
 *
 * The pool owns that memory, in slots of an input and an output buffer: a
 * stream of weights uses them in turn, so that while one weight is merged
 * others are read or written. A slot's buffers stay intact until the slot is
 * used again. They lie in one shared WebAssembly memory, where the workers'
 * kernel (Bf16LoraMerge) merges them in place, without copies; a buffer that
 * does not fit in its 4 GiB, or a merge the kernel cannot do alone, goes
 * through copies. Workers start on the first merge, or earlier with start().
 */
import { availableParallelism } from 'node:os';
import type { Worker } from 'node:worker_threads';
import { typeScriptWorker } from '@lorakit/core/native';
import { Bf16LoraMerge, allocate, sharedMemory, type LowRankDelta } from '@lorakit/core/wasm';

/** A slot's buffer: a view of `capacity` bytes, at byte offset `at` of the pool's memory when it lies there. */
interface SlotBuffer {
  bytes: Uint8Array;
  at: number | undefined;
}

const EMPTY: SlotBuffer = { bytes: new Uint8Array(0), at: undefined };

export class Bf16MergePool {
  readonly threads: number;
  readonly slots: number;
  readonly memory = sharedMemory();
  readonly #inPlace = Bf16LoraMerge.available();
  readonly #inputs: SlotBuffer[];
  readonly #outputs: SlotBuffer[];
  #workers: Worker[] = [];
  #nextId = 0;
  /** Why a worker stopped, if one did: later merges fail at once instead of waiting for it. */
  #failure: Error | undefined;
  readonly #pending = new Map<number, { resolve: () => void; reject: (error: Error) => void }>();

  constructor({ threads = availableParallelism(), slots = 2 } = {}) {
    [this.threads, this.slots] = [threads, slots];
    this.#inputs = Array.from({ length: slots }, () => EMPTY);
    this.#outputs = Array.from({ length: slots }, () => EMPTY);
  }

  /** Starts the workers now (each takes a moment to load), to overlap that with other work. */
  start(): void {
    this.#worker(this.threads - 1);
  }

  /** The input buffer of a slot, `bytes` long, to read a weight into. */
  input(slot: number, bytes: number): Uint8Array {
    return this.#buffer(this.#inputs, slot, bytes).bytes.subarray(0, bytes);
  }

  /** bf16(input + Σ factor·B·A) for the bf16 weight [out, inp] read into the slot's input, in the slot's output buffer. */
  async merge(slot: number, [out, inp]: [number, number], deltas: LowRankDelta[]): Promise<Uint8Array> {
    const length = out * inp * 2;
    const [source, merged] = [this.#inputs[slot], this.#buffer(this.#outputs, slot, length)];
    if (source.bytes.length < length) throw new RangeError(`Bf16MergePool: slot ${slot} holds no weight of ${length} bytes`);
    const inPlace = this.#inPlace && deltas.length === 1 && Bf16LoraMerge.fitsInPlace(inp) && source.at !== undefined && merged.at !== undefined;
    // in place, each worker's share is whole tiles of four rows
    const [unit, parts] = inPlace ? [4, Math.min(this.threads, Math.ceil(out / 4))] : [1, Math.min(this.threads, out)];
    const boundary = (p: number) => (p === parts ? out : Math.floor((out * p) / parts / unit) * unit);
    await Promise.all(Array.from({ length: parts }, (_, p) => {
      const [from, to] = [boundary(p), boundary(p + 1)];
      // A and B are copied (small); the weight's rows are shared.
      const rowDeltas = deltas.map(({ a, b, r, factor }) => ({ a: a.slice(), b: b.slice(from * r, to * r), r, factor }));
      if (inPlace) return this.#run(p, { fromAt: source.at! + from * inp * 2, toAt: merged.at! + from * inp * 2, rows: to - from, inp, delta: rowDeltas[0] });
      const rows = (buffer: SlotBuffer) => new Uint16Array(buffer.bytes.buffer, buffer.bytes.byteOffset + from * inp * 2, (to - from) * inp);
      return this.#run(p, { source: rows(source), merged: rows(merged), inp, deltas: rowDeltas });
    }));
    return merged.bytes.subarray(0, length);
  }

  async close(): Promise<void> {
    this.#failure ??= new Error('the merge pool is closed');
    await Promise.all(this.#workers.map((w) => w.terminate()));
    this.#workers = [];
  }

  /** A slot's buffer of at least `bytes`: in the pool's memory where it fits, else a SharedArrayBuffer of its own. */
  #buffer(list: SlotBuffer[], slot: number, bytes: number): SlotBuffer {
    if (list[slot].bytes.length < bytes) {
      const at = allocate(this.memory, bytes);
      list[slot] = at === undefined ? { bytes: new Uint8Array(new SharedArrayBuffer(bytes)), at } : { bytes: new Uint8Array(this.memory.buffer, at, bytes), at };
    }
    return list[slot];
  }

  #run(worker: number, job: object): Promise<void> {
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      if (this.#failure) return reject(this.#failure);
      this.#pending.set(id, { resolve, reject });
      this.#worker(worker).postMessage({ id, ...job });
    });
  }

  #worker(index: number): Worker {
    while (this.#workers.length <= index) {
      const worker = typeScriptWorker(new URL('./merge-worker.ts', import.meta.url), { workerData: { memory: this.memory } });
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
