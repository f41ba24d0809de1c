/**
 * Embedding lookup: rows of a [V, D] table by integer ids.
 *
 *   ids [...], weight [V, D] -> [..., D];  dweight[id] += g[position]
 */
import { record } from '../autograd.ts';
import { Tensor, type FloatArray } from '../tensor.ts';
import { formatShape } from '../shape.ts';
import { traceOp } from '../compile/trace.ts';

export function embedding(ids: Tensor, weight: Tensor): Tensor {
  if (ids.isFloat) throw new Error(`embedding: ids must be int32 or int64, got ${ids.dtype}`);
  if (weight.ndim !== 2) throw new Error(`embedding: weight must be [V, D], got ${formatShape(weight.shape)}`);
  const [vocab, dim] = weight.shape;
  const rows = Int32Array.from(ids.data as ArrayLike<number | bigint>, Number);
  const table = weight.values;
  const out = new (table.constructor as Float32ArrayConstructor)(rows.length * dim) as FloatArray;
  rows.forEach((id, i) => {
    if (!(id >= 0 && id < vocab)) throw new Error(`embedding: id ${id} is outside the table of ${vocab} rows`);
    out.set(table.subarray(id * dim, (id + 1) * dim), i * dim);
  });
  const result = new Tensor(out, [...ids.shape, dim]);
  traceOp('embedding', [ids, weight], [result], (g, [i, w]) => [g.node('Gather', [w, i], { axis: 0 })]);
  return record('embedding', result, [weight], (g) => [
    () => {
      const dw = new (table.constructor as Float32ArrayConstructor)(table.length) as FloatArray;
      const gs = g.values;
      rows.forEach((id, i) => {
        for (let d = 0; d < dim; d++) dw[id * dim + d] += gs[i * dim + d];
      });
      return new Tensor(dw, weight.shape);
    },
  ]);
}
