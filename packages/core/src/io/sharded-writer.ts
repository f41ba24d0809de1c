/**
 * Sharded safetensors as transformers' save_pretrained writes them: tensors
 * in the given order fill `model-0000k-of-0000n.safetensors` up to a maximum
 * shard size, with `model.safetensors.index.json` (metadata.total_size and
 * weight_map); a single shard is just `model.safetensors`.
 */
import { join } from 'node:path';
import { writeFile } from 'node:fs/promises';
import { saveSafetensors, type TensorRecord } from './safetensors-writer.ts';
import { INDEX_FILE, SINGLE_FILE } from './checkpoint.ts';
import { writeFileAtomic } from './atomic.ts';

/** Group tensor names into shards of at most `maxShardSize` bytes (a larger tensor gets a shard of its own). */
export function planShards(sizes: ReadonlyArray<[string, number]>, maxShardSize: number): string[][] {
  const shards: string[][] = [];
  let current: string[] = [];
  let bytes = 0;
  for (const [name, size] of sizes) {
    if (current.length > 0 && bytes + size > maxShardSize) {
      shards.push(current);
      current = [];
      bytes = 0;
    }
    current.push(name);
    bytes += size;
  }
  if (current.length > 0 || shards.length === 0) shards.push(current);
  return shards;
}

export function shardFileName(index: number, count: number): string {
  const pad = (n: number) => String(n).padStart(5, '0');
  return count === 1 ? SINGLE_FILE : `model-${pad(index + 1)}-of-${pad(count)}.safetensors`;
}

/** The index JSON for a plan, as transformers writes it. */
export function indexJson(plan: string[][], sizes: ReadonlyMap<string, number>): string {
  const weightMap: Record<string, string> = {};
  plan.forEach((names, k) => names.forEach((n) => (weightMap[n] = shardFileName(k, plan.length))));
  const sorted = Object.fromEntries(Object.entries(weightMap).sort(([a], [b]) => (a < b ? -1 : 1)));
  const totalSize = [...sizes.values()].reduce((a, b) => a + b, 0);
  return `${JSON.stringify({ metadata: { total_size: totalSize }, weight_map: sorted }, null, 2)}\n`;
}

/** Write all tensors at once (for streaming, plan with planShards and write shard by shard). */
export async function saveShardedSafetensors(dir: string, tensors: ReadonlyMap<string, TensorRecord>, maxShardSize: number): Promise<string[]> {
  const sizes = new Map([...tensors].map(([n, r]) => [n, r.bytes.length]));
  const plan = planShards([...sizes], maxShardSize);
  const written: string[] = [];
  for (const [k, names] of plan.entries()) {
    const file = shardFileName(k, plan.length);
    await saveSafetensors(join(dir, file), new Map(names.map((n) => [n, tensors.get(n)!])));
    written.push(file);
  }
  if (plan.length > 1) {
    const text = indexJson(plan, sizes);
    await writeFileAtomic(join(dir, INDEX_FILE), (handle) => writeFile(handle, text));
    written.push(INDEX_FILE);
  }
  return written;
}
