/**
 * What this machine could do at best, for each benchmark row: arithmetic at
 * the fp32 peak (machine.ts) or bytes at the measured memory and disk speeds.
 *
 * FLOP per token of a llama-family model with LoRA r on its 7 projections:
 *   forward  = 2·linear + 2·S·(heads·head_dim)·layers + lora
 *   backward = 2·linear + 4·S·(heads·head_dim)·layers + 2·lora    (no weight gradients for the frozen base)
 * with linear = the projections' and the head's weights, S the sequence
 * length, lora = 2·r·(in + out) summed over the adapted layers. The attention
 * is causal: a query at position t meets t + 1 keys, S/2 on average, so its
 * two matmuls (q·kᵀ and p·v) count half of the 4·S·(heads·head_dim) a full
 * square would.
 */
import { execFileSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import type { LlamaFamilyConfig } from '@lorakit/models';
import { median } from '../stats.ts';

export interface FlopsPerToken {
  forward: number;
  backward: number;
}

export function flopsPerToken(c: LlamaFamilyConfig, sequence: number, r: number): FlopsPerToken {
  const headDim = c.head_dim ?? c.hidden_size / c.num_attention_heads;
  const [d, q, kv, i] = [c.hidden_size, c.num_attention_heads * headDim, (c.num_key_value_heads ?? c.num_attention_heads) * headDim, c.intermediate_size];
  const projections: Array<[number, number]> = [[d, q], [d, kv], [d, kv], [q, d], [d, i], [d, i], [i, d]];
  const linear = c.num_hidden_layers * projections.reduce((n, [a, b]) => n + a * b, 0) + d * c.vocab_size;
  const lora = c.num_hidden_layers * projections.reduce((n, [a, b]) => n + 2 * r * (a + b), 0);
  const attention = 2 * sequence * q * c.num_hidden_layers; // causal: half the square
  return { forward: 2 * linear + attention + lora, backward: 2 * linear + 2 * attention + 2 * lora };
}

/** Memory bandwidth in bytes/s (read + write), from copying 256 MiB: the median of 3. */
export function memoryBandwidth(): number {
  const [from, to] = [new Float64Array(2 ** 25).fill(1), new Float64Array(2 ** 25)];
  const times = [0, 1, 2, 3].map(() => {
    const start = performance.now();
    to.set(from);
    return (performance.now() - start) / 1000;
  });
  return (2 * from.byteLength) / median(times.slice(1));
}

function seconds(command: string): number {
  const start = performance.now();
  execFileSync('sh', ['-c', command], { stdio: 'ignore' });
  return (performance.now() - start) / 1000;
}

/**
 * Seconds to copy a file: read from the page cache (warmed first) and written
 * straight to the disk (O_DIRECT, as lorakit writes), then synced.
 */
export function diskLimit(file: string, scratch: string): number {
  seconds(`cat '${file}' > /dev/null`);
  const copy = seconds(`dd if='${file}' of='${scratch}' bs=16M oflag=direct conv=fdatasync 2>/dev/null`);
  rmSync(scratch, { force: true });
  return copy;
}
