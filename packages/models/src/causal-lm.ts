/**
 * What every causal language model in lorakit takes and returns, with
 * transformers' semantics:
 *
 *   model.call({ inputIds, attentionMask, positionIds, labels }) -> { logits, loss }
 *   inputIds [B, T] int; attentionMask [B, P+T] (1 = token, 0 = padding);
 *   positions 0..T-1 (after any cache) unless given; labels shifted inside,
 *   -100 ignored, mean over the rest.
 *
 * Training asks for the loss alone with logitsToKeep 0: the head and the
 * cross-entropy then run fused, chunked over the vocabulary (core's
 * linearCrossEntropy), and the [B, T, V] logits are never made.
 */
import { Module, Tensor, checkpoint, compiledCall } from '@lorakit/core';
import { Linear } from '@lorakit/core/nn';
import { attentionBias, crossEntropy, formatShape, linearCrossEntropy, slice, tanh } from '@lorakit/core/ops';
import type { ModelConfig } from './config.ts';
import type { LayerCache } from './llama/attention.ts';
import type { RotaryTables } from './rope.ts';

export interface CausalLMInputs {
  inputIds: Tensor;
  attentionMask?: Tensor | null;
  positionIds?: Tensor | null;
  labels?: Tensor | null;
  /** Keys and values of earlier positions; extended in place. */
  cache?: KVCache | null;
  /** Compute logits for the last N positions only (generation needs 1; 0 with labels: the loss alone). */
  logitsToKeep?: number;
  /**
   * The rope tables and masks, which the forward otherwise computes in JavaScript from the ids, mask and
   * positions: a decoder graph's trace gives its own, computed in the graph (export/decoder-graph.ts).
   */
  context?: LayerContext;
}

/**
 * What one forward's layers need besides their input: rope tables by rope name (null: none, a NoPE layer),
 * masks by sliding window, and the positions (GPT-2's learned position embeddings).
 */
export interface LayerContext {
  rotary: (rope: string | null) => RotaryTables; // cos/sin [B|1, 1, T, R]
  bias: (slidingWindow: number | null) => Tensor; // [B|1, 1, T, P+T]
  positions: () => Tensor; // [B|1, T] int
}

export interface CausalLMOutput {
  logits: Tensor; // [B, T or logitsToKeep, V]
  loss: Tensor | null;
}

export abstract class CausalLM extends Module {
  abstract readonly config: ModelConfig;
  /** Activation checkpointing per decoder layer, for long sequences (transformers' gradient_checkpointing_enable). */
  abstract enableGradientCheckpointing(on?: boolean): void;
  /**
   * Run each decoder layer compiled (core's compiledCall): traced on its first call at each shape, then
   * one onnxruntime session each way. Off by default; Trainer turns it on.
   */
  abstract enableCompiledLayers(on?: boolean): void;
  abstract override forward(inputs: CausalLMInputs): CausalLMOutput;
  /** Parameter names that are the same tensor as another (tied embeddings): [alias, source]. */
  abstract tiedWeights(): Array<[string, string]>;
  /** A cache with one entry per layer. */
  abstract newCache(): KVCache;
  /** The output head (transformers' get_output_embeddings): "all-linear" leaves it alone. */
  abstract outputEmbeddingsName(): string;
}

export class KVCache {
  readonly layers: LayerCache[];

  /**
   * `ropeSwitch`: the sequence length past which the model's rope changes (phi3's longrope:
   * original_max_position_embeddings), making keys cached before it stale.
   */
  constructor(layers: number, readonly ropeSwitch: number | null = null) {
    this.layers = Array.from({ length: layers }, () => ({ key: null, value: null }));
  }

  /** Positions already cached. */
  get length(): number {
    return this.layers[0]?.key?.shape[2] ?? 0;
  }

  /**
   * Whether a step that makes the sequence `total` long must run the whole sequence again on a new
   * cache: the first step past ropeSwitch, as transformers' phi3 generation does.
   */
  staleAt(total: number): boolean {
    return staleCache(this.ropeSwitch, this.length, total);
  }
}

/** Whether `cached` positions, made before a rope switch (phi3's longrope), are stale for a sequence `total` long. */
export function staleCache(ropeSwitch: number | null, cached: number, total: number): boolean {
  return ropeSwitch !== null && total > ropeSwitch && cached > 0 && cached <= ropeSwitch;
}

export interface HeadOptions {
  /** The logits are divided by it (granite's logits_scaling). */
  divisor?: number;
  /** Then soft-capped as c·tanh(x/c) (gemma2's final_logit_softcapping). */
  softcap?: number | null;
}

/**
 * The head over the final hidden states (only the last `logitsToKeep` positions), divided and
 * soft-capped as the family does, and the loss when labels are given.
 */
export function headOutput(lmHead: Module & { call(x: Tensor): Tensor }, hidden: Tensor, { logitsToKeep, labels }: CausalLMInputs, { divisor = 1, softcap = null }: HeadOptions = {}): CausalLMOutput {
  const [b, t, c] = hidden.shape; // hidden [B, T, C]
  if (logitsToKeep === 0 && labels && lmHead instanceof Linear && lmHead.bias === null) {
    const loss = linearCrossEntropy(hidden.reshape([b * t, c]), lmHead.weight, shiftedLabels(labels, b, t), { divisor, softcap });
    return { logits: Tensor.zeros([b, 0, lmHead.outFeatures]), loss };
  }
  if (logitsToKeep === 0 && labels) { // a wrapped head (LoRA on lm_head, modules_to_save): the loss from every logit, none kept
    const full = headOutput(lmHead, hidden, { inputIds: labels, labels }, { divisor, softcap });
    return { logits: slice(full.logits, 1, t, t), loss: full.loss };
  }
  const kept = logitsToKeep !== undefined && logitsToKeep < t ? slice(hidden, 1, t - logitsToKeep, t) : hidden;
  const head = lmHead.call(kept); // [B, T', V]
  const divided = divisor === 1 ? head : head.div(divisor);
  const logits = softcap === null ? divided : tanh(divided.div(softcap)).mul(softcap);
  return { logits, loss: labels ? causalLMLoss(logits, labels) : null };
}

/**
 * transformers' ForCausalLMLoss: logits[:, t] predict labels[:, t + 1]; -100 is
 * ignored. The shift moves the labels, not the logits: each row's last
 * position gets -100, so the [B, T, V] logits are never copied.
 */
export function causalLMLoss(logits: Tensor, labels: Tensor): Tensor {
  const [b, t, v] = logits.shape;
  return crossEntropy(logits.reshape([b * t, v]), shiftedLabels(labels, b, t));
}

/** labels [B, T] -> [B·T], each row moved one to the left and ended with -100. */
function shiftedLabels(labels: Tensor, b: number, t: number): Tensor {
  if (labels.ndim !== 2 || labels.shape[0] !== b || labels.shape[1] !== t) {
    throw new Error(`labels ${formatShape(labels.shape)} do not match the ${b} × ${t} positions of the input`);
  }
  const ids = Int32Array.from(labels.data as ArrayLike<number | bigint>, Number);
  const shifted = new Int32Array(b * t).fill(-100);
  for (let r = 0; r < b; r++) shifted.set(ids.subarray(r * t + 1, (r + 1) * t), r * t);
  return new Tensor(shifted, [b * t]);
}

/** Per-row positions: given, or past..past+T-1 shared by every row. */
export function positionsOf(inputIds: Tensor, positionIds: Tensor | null | undefined, past: number): number[][] {
  const [b, t] = inputIds.shape;
  if (positionIds === null || positionIds === undefined) return [Array.from({ length: t }, (_, i) => past + i)];
  if (positionIds.numel !== b * t && positionIds.numel !== t) throw new Error(`positionIds ${formatShape(positionIds.shape)} do not match inputIds ${formatShape(inputIds.shape)}`);
  const flat = positionIds.toArray();
  const rows = flat.length / t;
  return Array.from({ length: rows }, (_, r) => flat.slice(r * t, (r + 1) * t));
}

/** The additive attention mask for a step of T new tokens after `past` cached ones. */
export function causalBias(inputIds: Tensor, attentionMask: Tensor | null | undefined, past: number, slidingWindow: number | null = null): Tensor {
  const [batch, queryLength] = inputIds.shape;
  const keyLength = past + queryLength;
  if (attentionMask && (attentionMask.ndim !== 2 || attentionMask.shape[0] !== batch || attentionMask.shape[1] !== keyLength)) {
    throw new Error(`attentionMask ${formatShape(attentionMask.shape)} should be [${batch}, ${keyLength}] (cached plus new positions)`);
  }
  const hasPadding = attentionMask?.toArray().some((v) => v === 0) ?? false;
  return attentionBias({ batch, queryLength, keyLength, causal: true, paddingMask: hasPadding ? attentionMask : null, slidingWindow });
}

export function checkInputIds(inputIds: Tensor, vocab: number): void {
  if (inputIds.isFloat || inputIds.ndim !== 2) throw new Error(`inputIds must be an int tensor [B, T], got ${inputIds.dtype} ${formatShape(inputIds.shape)}`);
  for (const id of inputIds.toArray()) if (!(id >= 0 && id < vocab)) throw new Error(`inputIds: token ${id} is outside the vocabulary of ${vocab}`);
}

/** What decides how a model runs its layers: checkpointed, compiled (both only without a cache). */
export interface LayerRunner extends Module {
  gradientCheckpointing: boolean;
  compiledLayers: boolean;
}

/**
 * Run one decoder layer: `call(h)`, compiled when the owner compiles its layers (`inputs`: the tensors from
 * outside the layer that `call` uses, as compiledCall wants them), checkpointed when training with
 * gradientCheckpointing (compiled: the backward graph recomputes the forward); neither with a cache.
 */
export function runLayer(owner: LayerRunner, h: Tensor, cache: LayerCache | null, layer: Module, inputs: () => Tensor[], call: (x: Tensor) => Tensor): Tensor {
  const checkpointed = owner.gradientCheckpointing && owner.training && cache === null;
  if (owner.compiledLayers && cache === null) return compiledCall(layer, h, inputs(), call, { checkpointed });
  return checkpointed ? checkpoint(call, h) : call(h);
}
