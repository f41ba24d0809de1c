/**
 * Inverted dropout: zero each element with probability p, scale the rest by
 * 1/(1−p); identity when not training or p = 0.  dx = g · mask/(1−p).
 */
import { Tensor } from '../tensor.ts';
import { defaultGenerator, type Generator } from '../random.ts';
import { mul } from './binary.ts';
import { traceRandom } from '../compile/trace.ts';

export function dropout(x: Tensor, p: number, training: boolean, generator: Generator = defaultGenerator): Tensor {
  if (!(p >= 0 && p < 1)) throw new Error(`dropout: p must be in [0, 1), got ${p}`);
  if (!training || p === 0) return x;
  const keep = 1 / (1 - p);
  const { shape, dtype } = x; // NOTE: not x itself, which a compiled block's draw would keep alive
  const draw = () => {
    const mask = Tensor.zeros(shape, dtype);
    generator.fillDropoutMask(mask.values, p, keep);
    return mask;
  };
  const mask = draw();
  traceRandom(mask, generator, draw); // a compiled block draws its mask again, at the same point of the generator's stream
  return mul(x, mask);
}
