/**
 * Batched matmul with optional transposes, on the native runtime.
 *
 *   C = op(A) · op(B),  op(X) = X or Xᵀ over the last two axes
 *   [..., m, k] · [..., k, n] -> [..., m, n]  (batch axes broadcast)
 *
 * Backward, with d = dC:
 *   d op(A) = d · op(B)ᵀ      d op(B) = op(A)ᵀ · d
 * and a transposed operand takes the transpose of its gradient, which the
 * flags express without copies. Each side is computed only when needed.
 */
import { record } from '../autograd.ts';
import { Tensor } from '../tensor.ts';
import { broadcastShapes, formatShape } from '../shape.ts';
import { GraphBuilder } from '../native/graph.ts';
import { nativeKernel } from '../native/session.ts';
import { sumTo } from './reduce.ts';

export interface MatmulOptions {
  transposeA?: boolean;
  transposeB?: boolean;
}

function lastTwoSwapped(rank: number): number[] {
  const perm = Array.from({ length: rank }, (_, i) => i);
  [perm[rank - 2], perm[rank - 1]] = [perm[rank - 1], perm[rank - 2]];
  return perm;
}

function matmulGraph(dtype: 'float32' | 'float64', rankA: number, rankB: number, ta: boolean, tb: boolean): Uint8Array {
  const g = new GraphBuilder('matmul', dtype);
  let a = g.input('a');
  let b = g.input('b');
  // NOTE: onnxruntime fuses Transpose + MatMul into one FusedMatMul for float32.
  if (ta) a = g.node('Transpose', [a], { perm: lastTwoSwapped(rankA) });
  if (tb) b = g.node('Transpose', [b], { perm: lastTwoSwapped(rankB) });
  g.output(g.node('MatMul', [a, b]));
  return g.build();
}

/** The output shape, or an error naming both shapes. */
function matmulShape(a: Tensor, b: Tensor, ta: boolean, tb: boolean): number[] {
  const describe = `matmul of ${formatShape(a.shape)}${ta ? 'ᵀ' : ''} by ${formatShape(b.shape)}${tb ? 'ᵀ' : ''}`;
  if (a.ndim < 2 || b.ndim < 2) throw new Error(`${describe}: both operands need at least 2 dimensions`);
  if (!a.isFloat || a.dtype !== b.dtype) throw new Error(`${describe}: operands must be float tensors of one dtype, got ${a.dtype} and ${b.dtype}`);
  const [m, k] = ta ? [a.shape[a.ndim - 1], a.shape[a.ndim - 2]] : [a.shape[a.ndim - 2], a.shape[a.ndim - 1]];
  const [k2, n] = tb ? [b.shape[b.ndim - 1], b.shape[b.ndim - 2]] : [b.shape[b.ndim - 2], b.shape[b.ndim - 1]];
  if (k !== k2) throw new Error(`${describe}: inner dimensions ${k} and ${k2} differ`);
  try {
    return [...broadcastShapes(a.shape.slice(0, -2), b.shape.slice(0, -2), 'matmul'), m, n];
  } catch {
    throw new Error(`${describe}: batch dimensions do not broadcast`);
  }
}

export function matmul(a: Tensor, b: Tensor, { transposeA = false, transposeB = false }: MatmulOptions = {}): Tensor {
  const shape = matmulShape(a, b, transposeA, transposeB);
  const dtype = a.dtype as 'float32' | 'float64';
  const key = `matmul:${dtype}:${a.ndim}:${b.ndim}:${transposeA}:${transposeB}`;
  const kernel = nativeKernel(key, dtype, () => matmulGraph(dtype, a.ndim, b.ndim, transposeA, transposeB));
  const [out] = kernel.run([a, b]);
  if (out.shape.length !== shape.length) throw new Error(`${key}: native result ${formatShape(out.shape)} is not ${formatShape(shape)}`);
  return record('matmul', out, [a, b], (d) => [
    () => sumTo(transposeA ? matmul(b, d, { transposeA: transposeB, transposeB: true }) : matmul(d, b, { transposeB: !transposeB }), a.shape),
    () => sumTo(transposeB ? matmul(d, a, { transposeA: true, transposeB: transposeA }) : matmul(a, d, { transposeA: !transposeA }), b.shape),
  ]);
}
