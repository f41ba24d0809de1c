/**
 * Gradient checks against central finite differences in float64, as
 * torch.autograd.gradcheck does: the op's analytic gradient of
 * L = Σ out ⊙ w (w random, so every output element counts) is compared with
 * (L(x + h) − L(x − h)) / 2h for every input element.
 */
import { Tensor } from '../tensor.ts';
import { Generator } from '../random.ts';

export interface GradcheckResult {
  /** Largest |analytic − numeric| / max(1, |numeric|) over all inputs. */
  maxError: number;
  worst: string;
}

export function gradcheck(fn: (...inputs: Tensor[]) => Tensor, inputs: Tensor[], { h = 1e-6, seed = 7 } = {}): GradcheckResult {
  const leaves = inputs.map((t) => (t.isFloat ? t.to('float64').clone().requiresGrad_() : t));
  const probe = fn(...leaves);
  const weights = Tensor.randn(probe.shape, { generator: new Generator(seed), dtype: 'float64' });
  const objective = (xs: Tensor[]) => {
    const out = fn(...xs).values;
    let total = 0;
    for (let i = 0; i < out.length; i++) total += out[i] * weights.values[i];
    return total;
  };
  probe.mul(weights).sum().backward();
  let maxError = 0;
  let worst = 'none';
  leaves.forEach((leaf, k) => {
    if (!leaf.isFloat) return;
    const x = leaf.values;
    const analytic = leaf.grad?.values ?? new Float64Array(x.length);
    const plain = leaves.map((t) => (t.isFloat ? t.detach() : t));
    for (let i = 0; i < x.length; i++) {
      const saved = x[i];
      x[i] = saved + h;
      const up = objective(plain);
      x[i] = saved - h;
      const down = objective(plain);
      x[i] = saved;
      const numeric = (up - down) / (2 * h);
      const error = Math.abs(analytic[i] - numeric) / Math.max(1, Math.abs(numeric));
      if (error > maxError) {
        maxError = error;
        worst = `input ${k} element ${i}: analytic ${analytic[i]}, numeric ${numeric}`;
      }
    }
  });
  return { maxError, worst };
}
