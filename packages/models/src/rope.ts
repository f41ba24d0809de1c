/**
 * Rotary position tables as transformers computes them (float32 at every
 * step), for the rope types lorakit supports.
 *
 *   default:  inv[i] = 1 / theta^(2i/R)          (R = rotary dims: head_dim · partial_rotary_factor)
 *   linear:   inv[i] / factor
 *   llama3:   low frequencies divided by factor, high ones kept, a smooth blend between
 *   longrope: inv[i] / ext[i], ext the short_factor list, or long_factor once a forward
 *             reaches past original_max_position_embeddings; cos and sin times the attention factor
 *
 * Both the older `rope_theta` + `rope_scaling` and the newer `rope_parameters` forms are read;
 * gemma3_text keeps one set per layer type (sliding_attention, full_attention).
 */
import { Tensor } from '@lorakit/core';
import { rotaryTables } from '@lorakit/core/ops';
import { FileFormatError, quote } from '@lorakit/core/io';
import type { GraphBuilder } from '@lorakit/core/native';
import type { LlamaFamilyConfig, RopeParameters } from './llama/config.ts';

export const SUPPORTED_ROPE_TYPES = ['default', 'linear', 'llama3', 'longrope'] as const;
const f = Math.fround;

type ResolvedRope = RopeParameters & { rope_type: string; rope_theta: number };

/** gemma3_text's rope per layer type, with transformers' defaults (theta 1e6 for full layers, 1e4 for sliding ones). */
function gemma3Rope(config: LlamaFamilyConfig, layerType: string): RopeParameters {
  const byType = (config.rope_parameters ?? {}) as Record<string, RopeParameters | undefined>;
  if (layerType === 'sliding_attention') return { rope_theta: config.rope_local_base_freq ?? 10_000, ...byType.sliding_attention };
  return { rope_theta: config.rope_theta ?? 1_000_000, ...config.rope_scaling, ...byType.full_attention };
}

/** The rope parameters of layers of `layerType` ('default' for every family but gemma3_text). */
export function ropeParameters(config: LlamaFamilyConfig, layerType = 'default'): ResolvedRope {
  const scaling = config.model_type === 'gemma3_text' ? gemma3Rope(config, layerType) : (config.rope_parameters ?? config.rope_scaling ?? {});
  const ropeType = scaling.rope_type ?? scaling.type ?? 'default';
  return {
    original_max_position_embeddings: config.original_max_position_embeddings,
    partial_rotary_factor: config.partial_rotary_factor,
    ...scaling,
    rope_type: ropeType === 'su' || ropeType === 'yarn' ? (config.model_type === 'phi3' ? 'longrope' : ropeType) : ropeType,
    rope_theta: scaling.rope_theta ?? config.rope_theta ?? 10000,
  };
}

/** How many of each head's dims rope turns. */
export function rotaryDims(config: LlamaFamilyConfig, layerType = 'default'): number {
  return Math.trunc(config.head_dim * (ropeParameters(config, layerType).partial_rotary_factor ?? 1));
}

function required(p: RopeParameters, field: keyof RopeParameters, file: string): number {
  const v = p[field];
  if (typeof v !== 'number' || !(v > 0)) throw new FileFormatError('InvalidConfig', file, `rope ${p.rope_type} needs a positive ${field}`);
  return v;
}

export interface RotaryTables {
  cos: Tensor; // [B|1, 1, T, R]
  sin: Tensor;
}

/** One rope: inverse frequencies and the cos/sin tables for a forward's positions. */
export class Rotary {
  readonly dim: number;
  readonly #params: ResolvedRope;
  readonly #inverse: Float64Array; // [R/2]
  /** longrope: the frequencies once positions pass original_max_position_embeddings, and the cos/sin factor. */
  readonly #long: Float64Array | null = null;
  readonly #scale: number = 1;

  constructor(config: LlamaFamilyConfig, layerType = 'default', file = 'config.json') {
    const p = (this.#params = ropeParameters(config, layerType));
    this.dim = rotaryDims(config, layerType);
    const base = Float64Array.from({ length: this.dim / 2 }, (_, i) => f(Math.pow(p.rope_theta, f(f(2 * i) / this.dim))));
    switch (p.rope_type) {
      case 'default':
        this.#inverse = base.map((b) => f(1 / b));
        break;
      case 'linear': {
        const factor = required(p, 'factor', file);
        this.#inverse = base.map((b) => f(f(1 / b) / factor));
        break;
      }
      case 'llama3':
        this.#inverse = llama3(base.map((b) => f(1 / b)), p, file);
        break;
      case 'longrope': {
        const context = required(p, 'original_max_position_embeddings', file);
        this.#inverse = extended(base, factors(p, 'short_factor', this.dim, file));
        this.#long = extended(base, factors(p, 'long_factor', this.dim, file));
        this.#scale = longropeScale(p, config.max_position_embeddings, context);
        break;
      }
      default:
        throw new FileFormatError('UnsupportedRope', file, `rope type ${quote(p.rope_type)} is not supported; lorakit supports ${SUPPORTED_ROPE_TYPES.join(', ')}`);
    }
  }

  /** The factor cos and sin are multiplied by (longrope's attention factor; 1 for the other ropes). */
  get attentionFactor(): number {
    return this.#scale;
  }

  /** longrope: the sequence length past which the long factors apply; else null. */
  get switchesAfter(): number | null {
    return this.#long === null ? null : this.#params.original_max_position_embeddings!;
  }

  /** The inverse frequencies a forward over `positions` uses (longrope switches by the largest position, as transformers does). */
  inverseFrequencies(positions: number[][] = [[0]]): Float64Array {
    if (this.#long === null) return this.#inverse;
    const longest = Math.max(...positions.map((row) => Math.max(...row))) + 1;
    return longest > this.#params.original_max_position_embeddings! ? this.#long : this.#inverse;
  }

  /** cos/sin [B|1, 1, T, R] for per-row positions (one row when all rows share them). */
  tables(positions: number[][]): RotaryTables {
    const inverse = this.inverseFrequencies(positions);
    const rows = positions.map((p) => rotaryTables(p, inverse, this.#scale));
    const join = (part: 'cos' | 'sin') => {
      const out = new Float32Array(rows.length * positions[0].length * this.dim);
      rows.forEach((r, b) => out.set(r[part], b * r[part].length));
      return new Tensor(out, [rows.length, 1, positions[0].length, this.dim]);
    };
    return { cos: join('cos'), sin: join('sin') };
  }

  /**
   * tables() as graph nodes, for a graph's own positions [B, T] int64: cos/sin [B, 1, T, R] (float32 angles
   * p·inv as transformers computes them; longrope's factors chosen by the largest position, as tables() does).
   */
  graphTables(g: GraphBuilder, positions: string): { cos: string; sin: string } {
    const inverse = (freqs: Float64Array) => g.float32Constant(freqs);
    let frequencies = inverse(this.#inverse); // [R/2]
    if (this.#long !== null) {
      const longest = g.node('ReduceMax', [positions], { keepdims: 0 }); // over every row, as inverseFrequencies
      const past = g.node('GreaterOrEqual', [longest, g.int64Scalar(this.#params.original_max_position_embeddings!)]);
      frequencies = g.node('Where', [past, inverse(this.#long), frequencies]);
    }
    const p = g.node('Unsqueeze', [g.node('Cast', [positions], { to: 1 }), g.int64Constant([-1])]); // [B, T, 1] float32
    const half = g.node('Mul', [p, frequencies]); // [B, T, R/2]
    const angles = g.node('Concat', [half, half], { axis: -1 }); // [B, T, R]
    const scaled = (x: string) => g.node('Unsqueeze', [this.#scale === 1 ? x : g.node('Mul', [x, g.scalar(this.#scale)]), g.int64Constant([1])]);
    return { cos: scaled(g.node('Cos', [angles])), sin: scaled(g.node('Sin', [angles])) };
  }
}

function llama3(inverse: Float64Array, p: RopeParameters, file: string): Float64Array {
  const factor = required(p, 'factor', file);
  const low = required(p, 'low_freq_factor', file);
  const high = required(p, 'high_freq_factor', file);
  const context = required(p, 'original_max_position_embeddings', file);
  const lowWavelen = context / low;
  const highWavelen = context / high;
  return inverse.map((inv) => {
    const wavelen = (2 * Math.PI) / inv;
    if (wavelen > lowWavelen) return f(inv / factor);
    if (wavelen < highWavelen) return inv;
    const smooth = (context / wavelen - low) / (high - low);
    return f((1 - smooth) * (inv / factor) + smooth * inv);
  });
}

/** longrope's short_factor or long_factor: R/2 positive numbers. */
function factors(p: RopeParameters, field: 'short_factor' | 'long_factor', dim: number, file: string): number[] {
  const v = p[field];
  if (!Array.isArray(v) || v.length !== dim / 2 || !v.every((x) => typeof x === 'number' && x > 0)) {
    throw new FileFormatError('InvalidConfig', file, `rope longrope needs ${field} as ${dim / 2} positive numbers, got ${quote(v ?? null)}`);
  }
  return v;
}

/** 1 / (ext[i] · theta^(2i/R)), in float32 as transformers computes it. */
function extended(base: Float64Array, ext: number[]): Float64Array {
  return base.map((b, i) => f(1 / f(f(ext[i]) * b)));
}

/** longrope's cos/sin factor: attention_factor, or √(1 + ln(s) / ln(original)) with s = max / original positions (1 when s ≤ 1). */
function longropeScale(p: RopeParameters, maxPositions: number, context: number): number {
  if (p.attention_factor !== undefined) return p.attention_factor;
  const factor = p.factor ?? maxPositions / context;
  return factor <= 1 ? 1 : Math.sqrt(1 + Math.log(factor) / Math.log(context));
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
