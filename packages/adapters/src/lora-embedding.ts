/**
 * LoraEmbedding: the module that replaces a targeted Embedding, with PEFT
 * 0.21.2's children and names (tuners/lora/layer.py, class Embedding):
 *
 *   embed_tokens: LoraEmbedding(
 *     (base_layer): Embedding(128, 32)
 *     (lora_dropout): ModuleDict((default): Identity())
 *     (lora_embedding_A): ParameterDict((default): [r, num_embeddings])
 *     (lora_embedding_B): ParameterDict((default): [embedding_dim, r])
 *   )
 *
 *   y = base(ids) + Σ_active s·embedding(ids, Aᵀ)·Bᵀ,   s = alpha / r  (alpha / √r with rsLoRA)
 *   merged: W [num, dim] += s·(B·A)ᵀ
 *
 * PEFT facts this follows:
 * - The factors are bare parameters (a ParameterDict), so they are saved as
 *   `<module>.lora_embedding_A` and `.lora_embedding_B`, without `.weight`.
 * - Initialisation: for init_lora_weights true and "gaussian" alike, A = 0 and
 *   B ~ N(0, 1) (B is the one drawn, as nn.Embedding's own init); for false
 *   both stay torch.randn, N(0, 1).
 * - lora_dropout is created but never applied: PEFT's Embedding.forward has no
 *   dropout, whatever lora_dropout says.
 * - The lookup of Aᵀ goes through F.embedding with the base layer's
 *   padding_idx, so column padding_idx of A gets no gradient (transformers
 *   builds embed_tokens with padding_idx = pad_token_id).
 * - A scale the embedding applies (Gemma's embed_scale) multiplies the LoRA
 *   term too in PEFT; lorakit's decoder scales the embedding's whole output
 *   after the lookup, which is the same up to rounding.
 * - DoRA on embeddings exists in PEFT (DoraEmbeddingVariant) but is not
 *   implemented here: inject.ts refuses it, naming the module.
 * - With tie_word_embeddings, lm_head holds the same weight but is not
 *   wrapped: in forward the head sees the base weight, unchanged by LoRA; a
 *   merge adds ΔW to the shared tensor, so the head changes too. PEFT warns
 *   about this when the adapter is added and again at merge_and_unload
 *   (ensure_weight_tying, which would also give lm_head a tied LoRA, is
 *   refused by peft-format.ts).
 */
import { Module, Parameter, Tensor, init, noGrad } from '@lorakit/core';
import { Dropout, Identity, ModuleDict, ParameterDict, type Embedding } from '@lorakit/core/nn';
import { embedding, matmul } from '@lorakit/core/ops';
import type { LowRankDelta } from '@lorakit/core/wasm';
import { transpose2d } from './base-layer.ts';
import { addLowRank, lowRank } from './merge-rows.ts';
import type { AdapterSettings } from './lora-linear.ts';

export class LoraEmbedding extends Module {
  base_layer: Embedding;
  lora_dropout = new ModuleDict<Dropout | Identity>();
  lora_embedding_A = new ParameterDict();
  lora_embedding_B = new ParameterDict();
  readonly settings = new Map<string, AdapterSettings>();
  activeAdapters: string[] = [];
  /** Adapters whose delta is currently added into the base weight, in merge order. */
  readonly mergedAdapters: string[] = [];
  disabled = false;

  /** paddingIdx: the row of the table whose lookups get no gradient (PyTorch's padding_idx), or null. */
  constructor(base: Embedding, readonly paddingIdx: number | null = null) {
    super();
    this.base_layer = base;
  }

  get numEmbeddings(): number {
    return this.base_layer.numEmbeddings;
  }

  get embeddingDim(): number {
    return this.base_layer.embeddingDim;
  }

  addAdapter(name: string, settings: AdapterSettings): void {
    this.lora_dropout.set(name, settings.dropout > 0 ? new Dropout(settings.dropout) : new Identity());
    const a = new Parameter(Tensor.zeros([settings.r, this.numEmbeddings])); // [r, num]
    const b = new Parameter(Tensor.zeros([this.embeddingDim, settings.r])); // [dim, r]
    if (settings.initLoraWeights === false) init.normal_(a);
    init.normal_(b);
    this.lora_embedding_A.set(name, a);
    this.lora_embedding_B.set(name, b);
    this.settings.set(name, settings);
  }

  deleteAdapter(name: string): void {
    if (this.mergedAdapters.includes(name)) throw new Error(`cannot delete adapter "${name}" while it is merged; unmerge first`);
    this.lora_dropout.delete(name);
    this.lora_embedding_A.delete(name);
    this.lora_embedding_B.delete(name);
    this.settings.delete(name);
    this.activeAdapters = this.activeAdapters.filter((a) => a !== name);
  }

  get merged(): boolean {
    return this.mergedAdapters.length > 0;
  }

  forward(ids: Tensor): Tensor {
    const result = this.base_layer.call(ids); // [..., dim]
    if (this.disabled || this.merged) return result;
    return this.activeAdapters.filter((a) => this.settings.has(a)).reduce((y, name) => y.add(this.#delta(ids, name)), result);
  }

  /** s·embedding(ids, Aᵀ)·Bᵀ for one adapter: [..., dim]. */
  #delta(ids: Tensor, name: string): Tensor {
    const { r, scaling } = this.settings.get(name)!;
    const afterA = embedding(ids, this.#lookupTable(this.lora_embedding_A.get(name)!)); // [..., r]
    const flat = afterA.reshape([-1, r]); // [N, r]
    const out = matmul(flat, this.lora_embedding_B.get(name)!, { transposeB: true }).mul(scaling); // [N, dim]
    return out.reshape([...ids.shape, this.embeddingDim]);
  }

  /** Aᵀ [num, r], its padding row cut off from the gradient (same values). */
  #lookupTable(a: Tensor): Tensor {
    const table = a.transpose(0, 1); // [num, r]
    if (this.paddingIdx === null) return table;
    const column = (padding: number, other: number) => Tensor.fromArray(Array.from({ length: this.numEmbeddings }, (_, i) => [i === this.paddingIdx ? padding : other])); // [num, 1]
    return table.mul(column(0, 1)).add(table.detach().mul(column(1, 0)));
  }

  /** s·B·A of one adapter, [dim, num]: the delta of Wᵀ, for the merge arithmetic (merge-rows.ts). */
  #lowRank(name: string, sign = 1): LowRankDelta {
    return lowRank(this.lora_embedding_A.get(name)!, this.lora_embedding_B.get(name)!, sign * this.settings.get(name)!.scaling);
  }

  /** W [num, dim] + (s·B·A)ᵀ: the table seen as [dim, num] (as a fan_in_fan_out weight is), merged, turned back. */
  mergedWeight(name: string, weight: Tensor = this.base_layer.weight, sign = 1): { weight: Tensor; norms: null } {
    const dense = transpose2d(weight); // [dim, num]
    addLowRank(dense.values as Float32Array, this.#lowRank(name, sign));
    return { weight: transpose2d(dense), norms: null };
  }

  /** Writes into the base weight in place: a tied lm_head, which shares it, changes with it (as in PEFT). */
  merge(names: string[] = this.activeAdapters, { safe = false } = {}): void {
    noGrad(() => {
      for (const name of names) {
        if (this.mergedAdapters.includes(name) || !this.settings.has(name)) continue;
        const { weight } = this.mergedWeight(name);
        if (safe && !weight.values.every(Number.isFinite)) throw new Error(`adapter "${name}" would put NaN or Inf into the base weight; nothing was merged`);
        this.base_layer.weight.values.set(weight.values);
        this.mergedAdapters.push(name);
      }
    });
  }

  unmerge(): void {
    noGrad(() => {
      while (this.mergedAdapters.length > 0) {
        const name = this.mergedAdapters.pop()!;
        this.base_layer.weight.values.set(this.mergedWeight(name, this.base_layer.weight, -1).weight.values);
      }
    });
  }

  adapterParameters(name: string): Parameter[] {
    return [this.lora_embedding_A.get(name), this.lora_embedding_B.get(name)].filter((p): p is Parameter => p !== undefined);
  }

  override extraRepr(): string {
    return '';
  }
}
