/**
 * How rotaryAttention splits its queries into causal blocks: positions [from, to)
 * whose scores need only the keys [0, keys), because a causal mask hides every
 * later one (checked on the mask itself, once per mask and split).
 */
import type { Tensor } from '../tensor.ts';
import { traceGuard } from '../compile/trace.ts';

/** What the split depends on: rotaryAttention's mask, its unseen-rows rule and an explicit block count. */
interface BlockOptions {
  bias: Tensor; // [B|1, 1, T, P+T]
  unseenRows?: 'zero' | 'uniform';
  queryBlocks?: number;
}

/** Query positions [from, to) and the keys [0, keys) they see. */
export interface QueryBlock {
  from: number;
  to: number;
  keys: number;
}

/** Queries per causal block, at least: below twice this, the whole square is computed. */
const BLOCK_QUERIES = 64;
const MAX_BLOCKS = 8;

/**
 * How a forward with no cache splits its queries: in equal blocks of at least BLOCK_QUERIES positions when the
 * mask is causal (a query at t sees no key after P + t, which masksAfter checks), so each block's scores stop at
 * its last position's keys; else one block, the whole square. Rows that see no key and average all values
 * (unseenRows 'uniform') need the whole square too.
 */
export function causalBlocks(queries: number, past: number, options: BlockOptions): QueryBlock[] {
  const whole = [{ from: 0, to: queries, keys: past + queries }];
  const count = options.queryBlocks ?? Math.min(MAX_BLOCKS, Math.floor(queries / BLOCK_QUERIES));
  if (count <= 1 || past > 0 || options.unseenRows === 'uniform') return whole;
  const blocks = Array.from({ length: count }, (_, j) => {
    const [from, to] = [Math.round((j * queries) / count), Math.round(((j + 1) * queries) / count)];
    return { from, to, keys: to };
  });
  const causal = masksAfter(options.bias, blocks);
  traceGuard('causal blocks', [options.bias], ([bias]) => masksAfter(bias, blocks) === causal);
  return causal ? blocks : whole;
}

/** Whether every query of each block has only masked keys from the block's `keys` on (checked once per mask). */
const causalChecks = new WeakMap<Tensor, Map<string, boolean>>();
function masksAfter(bias: Tensor, blocks: QueryBlock[]): boolean {
  const checks = causalChecks.get(bias) ?? new Map<string, boolean>();
  causalChecks.set(bias, checks);
  const key = blocks.map((b) => b.to).join();
  let masked = checks.get(key);
  if (masked === undefined) {
    const [rows, , queries, keys] = bias.shape;
    const lowest = bias.dtype === 'float32' ? -3.4028234663852886e38 : -Number.MAX_VALUE;
    const values = bias.values;
    masked = true;
    for (let r = 0; r < rows && masked; r++) {
      for (const block of blocks) {
        for (let t = block.from; t < block.to && masked; t++) {
          const row = (r * queries + t) * keys;
          for (let s = block.keys; s < keys; s++) if (values[row + s] > lowest) masked = false;
        }
      }
    }
    checks.set(key, masked);
  }
  return masked;
}
