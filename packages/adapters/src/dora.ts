/**
 * DoRA (weight-decomposed LoRA), as PEFT's tuners/lora/dora.py computes it.
 *
 *   W' = m ⊙ (W + s·B·A) / ‖W + s·B·A‖_row        (m: the magnitude vector [out])
 *
 * Forward, with the row norm treated as a constant (detached, as in the paper's section 4.3):
 *   k = m / ‖W + s·B·A‖_row
 *   y = base(x) + (k − 1) ⊙ (x·Wᵀ) + k ⊙ s·B(A(x))
 * where x·Wᵀ is the base output without bias (recomputed from dropout(x) when dropout is active).
 */
import { Module, Parameter, Tensor, noGrad } from '@lorakit/core';
import { untraceable } from '@lorakit/core/native';
import { matmul } from '@lorakit/core/ops';
import type { LinearBase } from './base-layer.ts';
import { addLowRank, lowRank } from './merge-rows.ts';

/** The magnitude vector of one adapter: PEFT's `lora_magnitude_vector.<name>.weight`. */
export class DoraMagnitude extends Module {
  weight: Parameter;

  constructor(outFeatures: number) {
    super();
    this.weight = new Parameter(Tensor.zeros([outFeatures]));
  }

  forward(): never {
    throw new Error('DoraMagnitude is read by LoraLinear, not called');
  }
}

/** ‖row‖ of each of the `rows` rows of a dense float32 weight, as float32. */
export function rowNormsOf(w: Float32Array, rows: number): Float32Array {
  const cols = w.length / rows;
  const norms = new Float32Array(rows);
  for (let r = 0; r < rows; r++) {
    let squares = 0;
    for (let c = 0; c < cols; c++) squares += w[r * cols + c] ** 2;
    norms[r] = Math.sqrt(squares);
  }
  return norms;
}

/**
 * DoRA's merged weight from W + s·B·A [out, in], in place: each row times
 * f32(m / ‖row‖), in float32 as PEFT computes it. Returns the row norms (for
 * an exact unmerge). LoraLinear's merge and the streamed merge both use it.
 */
export function doraRescale(combined: Float32Array, magnitude: Float32Array): Float32Array {
  const norms = rowNormsOf(combined, magnitude.length);
  const cols = combined.length / magnitude.length;
  for (let r = 0; r < norms.length; r++) {
    const factor = Math.fround(magnitude[r] / norms[r]);
    for (let c = 0; c < cols; c++) combined[r * cols + c] *= factor;
  }
  return norms;
}

/** ‖W + s·B·A‖ per output row, as a constant [out]. */
export function rowNorms(base: LinearBase, a: Tensor, b: Tensor, scaling: number): Float32Array {
  return noGrad(() => rowNormsOf(addLowRank(base.denseWeight().values.slice() as Float32Array, lowRank(a, b, scaling)), base.outFeatures));
}

/** The magnitude a fresh DoRA adapter starts from: the row norms themselves (so k = 1). */
export function initialMagnitude(base: LinearBase, a: Tensor, b: Tensor, scaling: number): Tensor {
  return new Tensor(rowNorms(base, a, b, scaling), [base.outFeatures]);
}

/** The DoRA term added to the base output. x and xl are [N, in]. */
export function doraDelta(base: LinearBase, xl: Tensor, baseResult: Tensor | null, a: Tensor, b: Tensor, magnitude: Tensor, scaling: number): Tensor {
  untraceable('DoRA\'s row norms are computed outside the graph (fold the adapter in: merge it)');
  const k = magnitude.div(new Tensor(rowNorms(base, a.detach(), b.detach(), scaling), [base.outFeatures])); // [out]
  const withoutBias = baseResult ?? noGrad(() => matmul(xl, base.denseWeight(), { transposeB: true })); // [N, out]
  const lora = matmul(matmul(xl, a, { transposeB: true }), b, { transposeB: true }).mul(scaling); // [N, out]
  return k.sub(1).mul(withoutBias).add(k.mul(lora));
}
