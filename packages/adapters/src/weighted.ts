/**
 * Combining adapters into a new one (PEFT's add_weighted_adapter) with the
 * math it intends: the new delta is Σ wᵢ·ΔWᵢ, ΔWᵢ = sᵢ·Bᵢ·Aᵢ.
 *
 *   "cat", "linear": exact, rank Σ rᵢ: A = [w₁s₁A₁; w₂s₂A₂; …], B = [B₁ B₂ …]
 *   "svd":           the best rank-k approximation of Σ wᵢ·ΔWᵢ (k defaults to the largest rᵢ)
 * The new adapter has scaling 1 (alpha = r), applied once.
 * NOTE: PEFT's "linear" sums the A and the B matrices separately, which adds
 * cross terms Bᵢ·Aⱼ when several adapters are combined; lorakit's does not.
 */
import { quote } from '@lorakit/core/io';
import { LoraConfig } from './config.ts';
import { LoraLinear } from './lora-linear.ts';
import type { PeftModel } from './peft-model.ts';
import { truncatedProduct } from './low-rank.ts';

export type Combination = 'cat' | 'linear' | 'svd';

interface Combined {
  layer: string;
  a: Float64Array; // [r, in]
  b: Float64Array; // [out, r]
  rank: number;
}

const escapeRegex = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

function combineLayer(layer: LoraLinear, name: string, adapters: string[], weights: number[], combination: Combination, svdRank: number | null): Combined | null {
  const present = adapters.map((a, i) => [a, weights[i]] as const).filter(([a]) => layer.settings.has(a));
  if (present.length === 0) return null;
  const { inFeatures, outFeatures } = layer.base;
  const rank = present.reduce((r, [a]) => r + layer.settings.get(a)!.r, 0);
  const a = new Float64Array(rank * inFeatures);
  const b = new Float64Array(outFeatures * rank);
  let at = 0;
  for (const [adapter, weight] of present) {
    const { r, scaling } = layer.settings.get(adapter)!;
    const ai = layer.lora_A.get(adapter)!.weight.values;
    const bi = layer.lora_B.get(adapter)!.weight.values;
    for (let k = 0; k < r * inFeatures; k++) a[at * inFeatures + k] = weight * scaling * ai[k];
    for (let o = 0; o < outFeatures; o++) for (let k = 0; k < r; k++) b[o * rank + at + k] = bi[o * r + k];
    at += r;
  }
  if (combination !== 'svd') return { layer: name, a, b, rank };
  const k = svdRank ?? Math.max(...present.map(([adapter]) => layer.settings.get(adapter)!.r));
  const { newA, newB } = truncatedProduct(b, a, outFeatures, rank, inFeatures, k);
  return { layer: name, a: newA, b: newB, rank: k };
}

/** The most common rank becomes r; the others go into rank_pattern (alpha = rank everywhere: scaling 1). */
function configFor(base: LoraConfig, combined: Combined[]): LoraConfig {
  const counts = new Map<number, number>();
  for (const c of combined) counts.set(c.rank, (counts.get(c.rank) ?? 0) + 1);
  const r = [...counts].sort((x, y) => y[1] - x[1] || y[0] - x[0])[0][0];
  const odd = combined.filter((c) => c.rank !== r);
  return new LoraConfig({
    r, loraAlpha: r, loraDropout: base.loraDropout, fanInFanOut: base.fanInFanOut, bias: 'none', taskType: base.taskType,
    baseModelNameOrPath: base.baseModelNameOrPath, revision: base.revision,
    targetModules: combined.map((c) => c.layer),
    rankPattern: Object.fromEntries(odd.map((c) => [escapeRegex(c.layer), c.rank])),
    alphaPattern: Object.fromEntries(odd.map((c) => [escapeRegex(c.layer), c.rank])),
    initLoraWeights: false,
  });
}

export function addWeightedAdapter(peft: PeftModel, adapters: string[], weights: number[], newName: string, combination: Combination, { svdRank = null as number | null } = {}): void {
  if (adapters.length === 0 || adapters.length !== weights.length) throw new Error(`addWeightedAdapter: give one weight per adapter (${adapters.length} adapters, ${weights.length} weights)`);
  if (!['cat', 'linear', 'svd'].includes(combination)) throw new Error(`addWeightedAdapter: combination must be "cat", "linear" or "svd", got ${quote(combination)}`);
  const configs = adapters.map((a) => {
    const c = peft.peftConfig.get(a);
    if (c === undefined) throw new Error(`addWeightedAdapter: no adapter named "${a}"`);
    if (c.useDora || c.modulesToSave?.length) throw new Error(`addWeightedAdapter: adapter "${a}" uses DoRA or modules_to_save, which cannot be combined`);
    return c;
  });
  const embedding = peft.adaptedLayers().find(([, l]) => !(l instanceof LoraLinear) && adapters.some((a) => l.settings.has(a)));
  if (embedding) throw new Error(`addWeightedAdapter: ${embedding[0].replace(/^base_model\.model\./, '')} is an embedding with LoRA; lorakit does not combine embedding adapters`);
  const model = peft.model;
  const combined = peft.loraLayers().flatMap(([name, layer]) => {
    const c = combineLayer(layer, name.replace(/^base_model\.model\./, ''), adapters, weights, combination, svdRank);
    return c === null ? [] : [c];
  });
  peft.addAdapter(newName, configFor(configs[0], combined));
  for (const c of combined) {
    const layer = model.getSubmodule(c.layer) as LoraLinear;
    layer.lora_A.get(newName)!.weight.values.set(Float32Array.from(c.a));
    layer.lora_B.get(newName)!.weight.values.set(Float32Array.from(c.b));
  }
}
