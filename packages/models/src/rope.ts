/**
 * Rotary inverse frequencies and cos/sin tables, as transformers computes
 * them (float32 at every step), for the rope types lorakit supports.
 *
 *   default: inv[i] = 1 / theta^(2i/D)
 *   linear:  inv[i] / factor
 *   llama3:  low frequencies divided by factor, high ones kept, a smooth blend between
 *
 * Both the older `rope_theta` + `rope_scaling` and the newer `rope_parameters` forms are read.
 */
import { Tensor } from '@lorakit/core';
import { rotaryTables } from '@lorakit/core/ops';
import { FileFormatError, quote } from '@lorakit/core/io';
import type { LlamaFamilyConfig, RopeParameters } from './llama/config.ts';

export const SUPPORTED_ROPE_TYPES = ['default', 'linear', 'llama3'] as const;
const f = Math.fround;

export function ropeParameters(config: LlamaFamilyConfig): RopeParameters & { rope_type: string; rope_theta: number } {
  const scaling = config.rope_parameters ?? config.rope_scaling ?? {};
  const ropeType = scaling.rope_type ?? scaling.type ?? 'default';
  return { ...scaling, rope_type: ropeType, rope_theta: scaling.rope_theta ?? config.rope_theta ?? 10000 };
}

function required(p: RopeParameters, field: keyof RopeParameters, file: string): number {
  const v = p[field];
  if (typeof v !== 'number' || !(v > 0)) throw new FileFormatError('InvalidConfig', file, `rope ${p.rope_type} needs a positive ${field}`);
  return v;
}

export function inverseFrequencies(config: LlamaFamilyConfig, file = 'config.json'): Float64Array {
  const p = ropeParameters(config);
  const dim = config.head_dim;
  const base = Float64Array.from({ length: dim / 2 }, (_, i) => f(1 / f(Math.pow(p.rope_theta, f(f(2 * i) / dim)))));
  switch (p.rope_type) {
    case 'default':
      return base;
    case 'linear': {
      const factor = required(p, 'factor', file);
      return base.map((v) => f(v / factor));
    }
    case 'llama3':
      return llama3(base, p, file);
    default:
      throw new FileFormatError('UnsupportedRope', file, `rope type ${quote(p.rope_type)} is not supported; lorakit supports ${SUPPORTED_ROPE_TYPES.join(', ')}`);
  }
}

function llama3(base: Float64Array, p: RopeParameters, file: string): Float64Array {
  const factor = required(p, 'factor', file);
  const low = required(p, 'low_freq_factor', file);
  const high = required(p, 'high_freq_factor', file);
  const context = required(p, 'original_max_position_embeddings', file);
  const lowWavelen = context / low;
  const highWavelen = context / high;
  return base.map((inv) => {
    const wavelen = (2 * Math.PI) / inv;
    if (wavelen > lowWavelen) return f(inv / factor);
    if (wavelen < highWavelen) return inv;
    const smooth = (context / wavelen - low) / (high - low);
    return f((1 - smooth) * (inv / factor) + smooth * inv);
  });
}

export interface RotaryTables {
  cos: Tensor; // [B|1, 1, T, D]
  sin: Tensor;
}

/** cos/sin [B|1, 1, T, D] for per-row positions (one row when all rows share them). */
export function rotaryFor(positions: number[][], invFreq: Float64Array): RotaryTables {
  const dim = 2 * invFreq.length;
  const rows = positions.map((p) => rotaryTables(p, invFreq));
  const join = (part: 'cos' | 'sin') => {
    const out = new Float32Array(rows.length * positions[0].length * dim);
    rows.forEach((r, b) => out.set(r[part], b * r[part].length));
    return new Tensor(out, [rows.length, 1, positions[0].length, dim]);
  };
  return { cos: join('cos'), sin: join('sin') };
}

/** Tables that leave q and k as they are (cos 1, sin 0: x·1 + rotateHalf(x)·0 = x exactly), for NoPE layers; one pair per step. */
const identities = new WeakMap<Tensor, RotaryTables>();
export function unrotated(rotary: RotaryTables): RotaryTables {
  let tables = identities.get(rotary.cos);
  if (tables === undefined) {
    const shape = [1, 1, rotary.cos.shape[2], rotary.cos.shape[3]];
    tables = { cos: Tensor.ones(shape), sin: Tensor.zeros(shape) };
    identities.set(rotary.cos, tables);
  }
  return tables;
}
