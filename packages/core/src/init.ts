/**
 * In-place initializers with PyTorch's fan rules (torch.nn.init).
 *
 *   fan_in = shape[1] · receptive, fan_out = shape[0] · receptive,
 *   receptive = product of shape[2:]
 *   kaimingUniform_(w, {a: √5}) -> U(−1/√fan_in, 1/√fan_in)   (nn.Linear's weight)
 *
 * Each draws from the default generator unless one is given.
 */
import { defaultGenerator, type Generator } from './random.ts';
import type { Tensor } from './tensor.ts';
import { formatShape } from './shape.ts';

type Options = { generator?: Generator };

let skipping = false;

/**
 * Build modules without drawing their initial weights, because a checkpoint
 * will overwrite them (transformers' no_init_weights). Inits become no-ops
 * inside `fn`; tensors keep their zeros.
 */
export function withoutInit<T>(fn: () => T): T {
  const previous = skipping;
  skipping = true;
  try {
    return fn();
  } finally {
    skipping = previous;
  }
}
export type FanMode = 'fan_in' | 'fan_out';
export type Nonlinearity = 'leaky_relu' | 'relu' | 'linear' | 'sigmoid' | 'tanh' | 'selu';

function fill(t: Tensor, sample: () => number): Tensor {
  if (skipping) return t;
  const values = t.values;
  for (let i = 0; i < values.length; i++) values[i] = sample();
  return t;
}

export function fans(t: Tensor): { fanIn: number; fanOut: number } {
  if (t.ndim < 2) throw new Error(`init: fan in and fan out need at least 2 dimensions, got ${formatShape(t.shape)}`);
  const receptive = t.shape.slice(2).reduce((a, b) => a * b, 1);
  return { fanIn: t.shape[1] * receptive, fanOut: t.shape[0] * receptive };
}

export function calculateGain(nonlinearity: Nonlinearity, a = 0.01): number {
  switch (nonlinearity) {
    case 'linear': case 'sigmoid': return 1;
    case 'tanh': return 5 / 3;
    case 'relu': return Math.SQRT2;
    case 'leaky_relu': return Math.sqrt(2 / (1 + a * a));
    case 'selu': return 3 / 4;
  }
}

export function zeros_(t: Tensor): Tensor {
  return constant_(t, 0);
}

export function ones_(t: Tensor): Tensor {
  return constant_(t, 1);
}

export function constant_(t: Tensor, value: number): Tensor {
  if (skipping) return t;
  t.values.fill(value);
  return t;
}

export function uniform_(t: Tensor, low = 0, high = 1, { generator = defaultGenerator }: Options = {}): Tensor {
  return fill(t, () => low + (high - low) * generator.uniform());
}

export function normal_(t: Tensor, mean = 0, std = 1, { generator = defaultGenerator }: Options = {}): Tensor {
  return fill(t, () => mean + std * generator.normal());
}

/** Normal(mean, std) redrawn until it lies in [a, b] (absolute bounds, as in PyTorch). */
export function truncNormal_(t: Tensor, mean = 0, std = 1, a = -2, b = 2, { generator = defaultGenerator }: Options = {}): Tensor {
  if (!(a < b)) throw new Error(`truncNormal_: need a < b, got [${a}, ${b}]`);
  return fill(t, () => {
    for (;;) {
      const v = mean + std * generator.normal();
      if (v >= a && v <= b) return v;
    }
  });
}

interface KaimingOptions extends Options {
  a?: number;
  mode?: FanMode;
  nonlinearity?: Nonlinearity;
}

function kaimingStd(t: Tensor, { a = 0, mode = 'fan_in', nonlinearity = 'leaky_relu' }: KaimingOptions): number {
  const { fanIn, fanOut } = fans(t);
  return calculateGain(nonlinearity, a) / Math.sqrt(mode === 'fan_in' ? fanIn : fanOut);
}

export function kaimingUniform_(t: Tensor, options: KaimingOptions = {}): Tensor {
  const bound = Math.sqrt(3) * kaimingStd(t, options);
  return uniform_(t, -bound, bound, options);
}

export function kaimingNormal_(t: Tensor, options: KaimingOptions = {}): Tensor {
  return normal_(t, 0, kaimingStd(t, options), options);
}

export function xavierUniform_(t: Tensor, gain = 1, options: Options = {}): Tensor {
  const { fanIn, fanOut } = fans(t);
  const bound = gain * Math.sqrt(6 / (fanIn + fanOut));
  return uniform_(t, -bound, bound, options);
}

export function xavierNormal_(t: Tensor, gain = 1, options: Options = {}): Tensor {
  const { fanIn, fanOut } = fans(t);
  return normal_(t, 0, gain * Math.sqrt(2 / (fanIn + fanOut)), options);
}
