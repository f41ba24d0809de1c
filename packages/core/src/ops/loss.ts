/**
 * Cross-entropy over class logits with an ignore index (PyTorch's default
 * -100) and mean reduction over the targets that are not ignored.
 *
 *   logits [N, C], targets [N] (int) -> scalar
 *   loss = −(1/M) Σ_{t_n ≠ ignore} log softmax(logits_n)[t_n]
 *   dlogits_n = g · (softmax(logits_n) − onehot(t_n)) / M   (0 for ignored rows)
 *
 * Fused: the [N, C] log-probabilities are never materialized.
 */
import { record } from '../autograd.ts';
import { Tensor, type FloatArray } from '../tensor.ts';
import { formatShape } from '../shape.ts';

export interface CrossEntropyOptions {
  ignoreIndex?: number;
}

/** The targets as class ids, checked: one per row, each a class or the ignore index. */
export function targetIds(targets: Tensor, rows: number, classes: number, ignoreIndex: number, op = 'crossEntropy'): Int32Array {
  if (targets.isFloat) throw new Error(`${op}: targets must be int32 or int64, got ${targets.dtype}`);
  if (targets.numel !== rows) throw new Error(`${op}: ${rows} rows but targets of shape ${formatShape(targets.shape)}`);
  const ids = Int32Array.from(targets.data as ArrayLike<number | bigint>, Number);
  for (const id of ids) {
    if (id !== ignoreIndex && (id < 0 || id >= classes)) throw new Error(`${op}: target ${id} is outside [0, ${classes})`);
  }
  return ids;
}

export function crossEntropy(logits: Tensor, targets: Tensor, { ignoreIndex = -100 }: CrossEntropyOptions = {}): Tensor {
  if (logits.ndim !== 2) throw new Error(`crossEntropy: logits must be [N, C], got ${formatShape(logits.shape)}`);
  const [rows, classes] = logits.shape;
  const ids = targetIds(targets, rows, classes, ignoreIndex);
  const x = logits.values;
  const logSumExp = new Float64Array(rows);
  let total = 0;
  let counted = 0;
  for (let r = 0; r < rows; r++) {
    if (ids[r] === ignoreIndex) continue;
    const row = x.subarray(r * classes, (r + 1) * classes);
    let max = -Infinity;
    for (let c = 0; c < classes; c++) if (row[c] > max) max = row[c];
    let sum = 0;
    for (let c = 0; c < classes; c++) sum += Math.exp(row[c] - max);
    logSumExp[r] = max + Math.log(sum);
    total += logSumExp[r] - row[ids[r]];
    counted++;
  }
  // NOTE: like PyTorch, a batch whose targets are all ignored gives NaN (0/0).
  const out = Tensor.scalar(total / counted, logits.dtype as 'float32' | 'float64');
  return record('crossEntropy', out, [logits], (g) => [
    () => {
      const scale = g.item() / counted;
      const dx = new (x.constructor as Float32ArrayConstructor)(x.length) as FloatArray;
      for (let r = 0; r < rows; r++) {
        if (ids[r] === ignoreIndex) continue;
        const base = r * classes;
        for (let c = 0; c < classes; c++) dx[base + c] = Math.exp(x[base + c] - logSumExp[r]) * scale;
        dx[base + ids[r]] -= scale;
      }
      return new Tensor(dx, logits.shape);
    },
  ]);
}
