/**
 * LoraLinear: the module that replaces a targeted Linear (or Conv1D, or 4-bit
 * layer), with PEFT's children and names:
 *
 *   q_proj: LoraLinear(
 *     (base_layer): Linear(256 -> 256)
 *     (lora_dropout): ModuleDict((default): Identity())
 *     (lora_A): ModuleDict((default): Linear(256 -> 8))
 *     (lora_B): ModuleDict((default): Linear(8 -> 256))
 *     (lora_magnitude_vector): ModuleDict()        // DoRA adapters only
 *   )
 *
 *   y = base(x) + Σ_active s·B(A(dropout(x))),   s = alpha / r  (alpha / √r with rsLoRA)
 * One active vanilla adapter runs as one fused native call (lora-kernel.ts).
 */
import { Module, Tensor, init, type Parameter } from '@lorakit/core';
import { Dropout, Identity, Linear, ModuleDict } from '@lorakit/core/nn';
import { matmul } from '@lorakit/core/ops';
import type { LowRankDelta } from '@lorakit/core/wasm';
import { baseOf, type LinearBase } from './base-layer.ts';
import { DoraMagnitude, doraDelta, doraRescale, initialMagnitude } from './dora.ts';
import { addLowRank, lowRank } from './merge-rows.ts';
import { loraLinear } from './lora-kernel.ts';
import type { InitLoraWeights } from './config.ts';

export interface AdapterSettings {
  r: number;
  alpha: number;
  scaling: number;
  dropout: number;
  useDora: boolean;
  initLoraWeights: InitLoraWeights;
}

export class LoraLinear extends Module {
  base_layer: Module;
  lora_dropout = new ModuleDict<Dropout | Identity>();
  lora_A = new ModuleDict<Linear>();
  lora_B = new ModuleDict<Linear>();
  lora_magnitude_vector = new ModuleDict<DoraMagnitude>();
  readonly settings = new Map<string, AdapterSettings>();
  activeAdapters: string[] = [];
  /** Adapters whose delta is currently added into the base weight, in merge order. */
  readonly mergedAdapters: string[] = [];
  disabled = false;
  /** Row norms cached at merge time, for an exact DoRA unmerge. */
  readonly mergedNorms = new Map<string, Float32Array>();

  constructor(base: Module) {
    super();
    this.base_layer = base;
  }

  get base(): LinearBase {
    return baseOf(this.base_layer);
  }

  addAdapter(name: string, settings: AdapterSettings): void {
    const { inFeatures, outFeatures } = this.base;
    this.lora_dropout.set(name, settings.dropout > 0 ? new Dropout(settings.dropout) : new Identity());
    const a = new Linear(inFeatures, settings.r, { bias: false });
    const b = new Linear(settings.r, outFeatures, { bias: false });
    if (settings.initLoraWeights === 'gaussian') init.normal_(a.weight, 0, 1 / settings.r);
    else if (settings.initLoraWeights === true) init.kaimingUniform_(a.weight, { a: Math.sqrt(5) });
    if (settings.initLoraWeights !== false) init.zeros_(b.weight);
    this.lora_A.set(name, a);
    this.lora_B.set(name, b);
    if (settings.useDora) {
      const magnitude = new DoraMagnitude(outFeatures);
      magnitude.weight.values.set(initialMagnitude(this.base, a.weight, b.weight, settings.scaling).values);
      this.lora_magnitude_vector.set(name, magnitude);
    }
    this.settings.set(name, settings);
  }

  deleteAdapter(name: string): void {
    if (this.mergedAdapters.includes(name)) throw new Error(`cannot delete adapter "${name}" while it is merged; unmerge first`);
    for (const dict of [this.lora_dropout, this.lora_A, this.lora_B, this.lora_magnitude_vector]) dict.delete(name);
    this.settings.delete(name);
    this.activeAdapters = this.activeAdapters.filter((a) => a !== name);
  }

  get merged(): boolean {
    return this.mergedAdapters.length > 0;
  }

  override compileKey(): string {
    const active = this.activeAdapters.map((name) => `${name}:${this.settings.get(name)?.scaling}:${this.settings.get(name)?.useDora}`);
    return `${this.disabled}|${this.mergedAdapters}|${active}`;
  }

  forward(x: Tensor): Tensor {
    if (this.disabled || this.merged) return this.#baseOnly(x);
    const flat = x.reshape([-1, this.base.inFeatures]); // [N, in]
    const active = this.activeAdapters.filter((a) => this.settings.has(a));
    const y = active.length === 1 && !this.settings.get(active[0])!.useDora
      ? this.#fused(flat, active[0])
      : active.reduce((result, name) => result.add(this.#delta(flat, result, name)), this.#baseOnly(flat));
    return y.reshape([...x.shape.slice(0, -1), this.base.outFeatures]); // [..., out]
  }

  #fused(x: Tensor, name: string): Tensor {
    const xl = (this.lora_dropout.get(name)! as Module & { call(x: Tensor): Tensor }).call(x);
    return loraLinear(x, xl, this.base, this.lora_A.get(name)!.weight, this.lora_B.get(name)!.weight, this.settings.get(name)!.scaling);
  }

  #baseOnly(x: Tensor): Tensor {
    return (this.base_layer as Module & { call(x: Tensor): Tensor }).call(x);
  }

  /** One adapter's contribution on top of `result` (the base output so far). */
  #delta(x: Tensor, result: Tensor, name: string): Tensor {
    const { scaling, useDora } = this.settings.get(name)!;
    const dropout = this.lora_dropout.get(name)! as Module & { call(x: Tensor): Tensor };
    const a = this.lora_A.get(name)!.weight;
    const b = this.lora_B.get(name)!.weight;
    if (!useDora) return matmul(matmul(dropout.call(x), a, { transposeB: true }), b, { transposeB: true }).mul(scaling);
    const dropping = dropout instanceof Dropout && this.training;
    const bias = this.base.bias;
    const baseResult = dropping ? null : bias === null ? result : result.sub(bias);
    return doraDelta(this.base, dropping ? dropout.call(x) : x, baseResult, a, b, this.lora_magnitude_vector.get(name)!.weight, scaling);
  }

  /** s·B·A of one adapter, for the merge arithmetic (merge-rows.ts). */
  #lowRank(name: string, sign = 1): LowRankDelta {
    return lowRank(this.lora_A.get(name)!.weight, this.lora_B.get(name)!.weight, sign * this.settings.get(name)!.scaling);
  }

  /** B·A·s as [out, in]. */
  deltaWeight(name: string): Tensor {
    const { outFeatures, inFeatures } = this.base;
    return new Tensor(addLowRank(new Float32Array(outFeatures * inFeatures), this.#lowRank(name)), [outFeatures, inFeatures]);
  }

  /** The base weight with this adapter merged: W + ΔW, or DoRA's m ⊙ (W + ΔW) / ‖W + ΔW‖. */
  mergedWeight(name: string, weight: Tensor = this.base.denseWeight()): { weight: Tensor; norms: Float32Array | null } {
    const combined = addLowRank(weight.values.slice() as Float32Array, this.#lowRank(name));
    const norms = this.settings.get(name)!.useDora ? doraRescale(combined, this.lora_magnitude_vector.get(name)!.weight.values as Float32Array) : null;
    return { weight: new Tensor(combined, weight.shape), norms };
  }

  merge(names: string[] = this.activeAdapters, { safe = false } = {}): void {
    for (const name of names) {
      if (this.mergedAdapters.includes(name) || !this.settings.has(name)) continue;
      const { weight, norms } = this.mergedWeight(name);
      if (safe && !weight.values.every(Number.isFinite)) throw new Error(`adapter "${name}" would put NaN or Inf into the base weight; nothing was merged`);
      this.base.setDenseWeight(weight);
      if (norms) this.mergedNorms.set(name, norms);
      this.mergedAdapters.push(name);
    }
  }

  unmerge(): void {
    while (this.mergedAdapters.length > 0) {
      const name = this.mergedAdapters.pop()!;
      const norms = this.mergedNorms.get(name);
      let weight = this.base.denseWeight();
      if (norms) weight = weight.div(this.lora_magnitude_vector.get(name)!.weight.div(new Tensor(norms, [norms.length])).reshape([-1, 1]));
      this.base.setDenseWeight(new Tensor(addLowRank(weight.values.slice() as Float32Array, this.#lowRank(name, -1)), weight.shape));
      this.mergedNorms.delete(name);
    }
  }

  adapterParameters(name: string): Parameter[] {
    return [this.lora_A.get(name), this.lora_B.get(name), this.lora_magnitude_vector.get(name)].flatMap((m) => (m ? m.parameters() : []));
  }

  override extraRepr(): string {
    return '';
  }
}
