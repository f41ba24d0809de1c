/**
 * Llama-family configs with transformers' defaults. Field names are transformers' own.
 *
 * One decoder serves every family; a family is its defaults, its traits (FAMILY_TRAITS: which norm,
 * where, which q/k norm, fused projections) and the options layerConfig reads off its fields:
 *   mistral      sliding_window on every layer
 *   qwen2        q/k/v biases, never o_proj's
 *   qwen3        q_norm / k_norm (RMSNorm over head_dim, per head, before RoPE); head_dim 128 by default
 *   smollm3      no_rope_layers[i] = 0: layer i has no rotary positions (NoPE)
 *   granite      embedding_multiplier, residual_multiplier, attention_multiplier (the attention scale), logits_scaling
 *   gemma        RMSNorm as x·(1 + w); embeddings times √hidden_size; GeGLU (gelu_pytorch_tanh); tied
 *   gemma2       gemma with four norms per layer, sliding and full layers (layer_types), scale
 *                query_pre_attn_scalar^-½, attention and final logits soft-capped
 *   gemma3_text  gemma2's layer with per-head (1 + w) q/k norms and no attention cap, a rope per layer type
 *   phi3         fused qkv_proj and gate_up_proj, partial rotary, longrope, optional sliding_window on every layer
 *   olmo2        norms after each sublayer instead of before, q/k norms over the whole projection
 */
import { rotaryDims } from '../rope.ts';

export interface RopeParameters {
  rope_type?: string;
  type?: string;
  rope_theta?: number;
  factor?: number;
  low_freq_factor?: number;
  high_freq_factor?: number;
  original_max_position_embeddings?: number;
  /** phi3: rope turns head_dim · partial_rotary_factor dims of each head. */
  partial_rotary_factor?: number;
  /** longrope: per-frequency divisors below and beyond original_max_position_embeddings, and the cos/sin factor. */
  short_factor?: number[];
  long_factor?: number[];
  attention_factor?: number;
}

export type LlamaFamilyType = 'llama' | 'mistral' | 'qwen2' | 'qwen3' | 'smollm3' | 'granite' | 'gemma' | 'gemma2' | 'gemma3_text' | 'phi3' | 'olmo2';

export interface LlamaFamilyConfig {
  model_type: LlamaFamilyType;
  vocab_size: number;
  hidden_size: number;
  intermediate_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  num_key_value_heads: number;
  head_dim: number;
  hidden_act: 'silu' | 'gelu' | 'gelu_pytorch_tanh' | 'relu';
  max_position_embeddings: number;
  rms_norm_eps: number;
  tie_word_embeddings: boolean;
  attention_bias: boolean;
  mlp_bias: boolean;
  rope_theta?: number;
  rope_scaling?: RopeParameters | null;
  rope_parameters?: RopeParameters | null;
  sliding_window?: number | null;
  pad_token_id?: number | null;
  eos_token_id?: number | number[] | null;
  /** bitsandbytes 4-bit checkpoints (see quantized.ts). */
  quantization_config?: Record<string, unknown> | null;
  bos_token_id?: number | null;
  /** smollm3: per layer, 1 = rotary positions, 0 = none (NoPE); by default every no_rope_layer_interval-th layer has none. */
  no_rope_layers?: number[];
  no_rope_layer_interval?: number;
  /** granite: h = embed(ids)·embedding_multiplier; x + sublayer(x)·residual_multiplier; q·kᵀ·attention_multiplier; logits / logits_scaling. */
  embedding_multiplier?: number;
  residual_multiplier?: number;
  attention_multiplier?: number;
  logits_scaling?: number;
  /** gemma2, gemma3_text: the attention scale is query_pre_attn_scalar^-½. */
  query_pre_attn_scalar?: number;
  /** gemma2: c·tanh(x/c) on the attention scores and on the logits. */
  attn_logit_softcapping?: number | null;
  final_logit_softcapping?: number | null;
  /** gemma2, gemma3_text (and qwen2, qwen3, smollm3 with use_sliding_window): 'sliding_attention' or 'full_attention' per layer. */
  layer_types?: string[];
  /** qwen2, qwen3, smollm3: whether sliding_window applies (to the layers layer_types makes sliding). */
  use_sliding_window?: boolean;
  /** qwen2, qwen3: by default, layers from this one on slide. */
  max_window_layers?: number;
  /** gemma2, gemma3_text: the MLP's activation (gemma and the others read hidden_act). */
  hidden_activation?: string;
  /** gemma3_text (older configs): rope base of the sliding layers. */
  rope_local_base_freq?: number;
  /** phi3: the context longrope's short factors serve (top level in phi3 configs). */
  original_max_position_embeddings?: number;
  partial_rotary_factor?: number;
}

/** Where a layer normalizes: before each sublayer (llama), before and after (gemma2, gemma3), after only (olmo2). */
export type NormPlacement = 'pre' | 'sandwich' | 'post';

/** What a family's modeling file hard-codes, as opposed to what its config says. */
export interface FamilyTraits {
  /** 'gemma': RMSNorm weights are stored as w and applied as (1 + w), starting at 0. */
  norm: 'rms' | 'gemma';
  norms: NormPlacement;
  /** q_norm / k_norm: over each head's head_dim, over the whole projection (olmo2), or none. */
  qkNorm: 'none' | 'head' | 'projection';
  /** phi3: q, k and v in one qkv_proj, gate and up in one gate_up_proj. */
  fused: boolean;
  /** transformers builds the MLP without biases whatever mlp_bias says. */
  mlpWithoutBias: boolean;
}

const LLAMA_TRAITS: FamilyTraits = { norm: 'rms', norms: 'pre', qkNorm: 'none', fused: false, mlpWithoutBias: false };
const GEMMA_TRAITS: FamilyTraits = { ...LLAMA_TRAITS, norm: 'gemma', mlpWithoutBias: true };

export const FAMILY_TRAITS: Record<LlamaFamilyType, FamilyTraits> = {
  llama: LLAMA_TRAITS,
  mistral: { ...LLAMA_TRAITS, mlpWithoutBias: true },
  qwen2: { ...LLAMA_TRAITS, mlpWithoutBias: true },
  qwen3: { ...LLAMA_TRAITS, qkNorm: 'head', mlpWithoutBias: true },
  smollm3: LLAMA_TRAITS,
  granite: LLAMA_TRAITS,
  gemma: GEMMA_TRAITS,
  gemma2: { ...GEMMA_TRAITS, norms: 'sandwich' },
  gemma3_text: { ...GEMMA_TRAITS, norms: 'sandwich', qkNorm: 'head' },
  phi3: { ...LLAMA_TRAITS, fused: true, mlpWithoutBias: true },
  olmo2: { ...LLAMA_TRAITS, norms: 'post', qkNorm: 'projection', mlpWithoutBias: true },
};

/** The fields one decoder layer reads. */
export type LlamaLayerConfig = Pick<LlamaFamilyConfig, 'hidden_size' | 'intermediate_size' | 'num_attention_heads' | 'num_key_value_heads' | 'head_dim' | 'rms_norm_eps' | 'mlp_bias' | 'hidden_act'> & FamilyTraits & {
  /** Biases on q, k and v (qwen2, or llama's attention_bias). */
  qkv_bias: boolean;
  /** Bias on o_proj (llama's attention_bias; never for qwen2). */
  o_bias: boolean;
  /** Which rope this layer uses ('default', or gemma3_text's layer type); null: none (smollm3's NoPE layers). */
  rope: string | null;
  /** How many of each head's dims rope turns (phi3's partial rotary), else head_dim. */
  rotary_dim: number;
  /** Keys further back than this are hidden from a query (mistral, phi3, the sliding layers of gemma2/3); null: none. */
  sliding_window: number | null;
  /** c in c·tanh(s/c) on the attention scores (gemma2), or null. */
  attn_softcap: number | null;
  /** Scale of q·kᵀ: 1/√head_dim, granite's attention_multiplier, or query_pre_attn_scalar^-½ (gemma2/3). */
  attention_scale: number;
  /** Factor on each sublayer's output before the residual add (granite), else 1. */
  residual_multiplier: number;
};

const common = { hidden_act: 'silu', rms_norm_eps: 1e-6, tie_word_embeddings: false, attention_bias: false, mlp_bias: false, rope_theta: 10000 } as const;

export const LLAMA_DEFAULTS = {
  llama: { ...common, vocab_size: 32000, hidden_size: 4096, intermediate_size: 11008, num_hidden_layers: 32, num_attention_heads: 32, max_position_embeddings: 2048 },
  mistral: { ...common, vocab_size: 32000, hidden_size: 4096, intermediate_size: 14336, num_hidden_layers: 32, num_attention_heads: 32, num_key_value_heads: 8, max_position_embeddings: 131072, sliding_window: 4096 },
  qwen2: { ...common, vocab_size: 151936, hidden_size: 4096, intermediate_size: 22016, num_hidden_layers: 32, num_attention_heads: 32, num_key_value_heads: 32, max_position_embeddings: 32768, use_sliding_window: false, sliding_window: 4096, max_window_layers: 28 },
  qwen3: { ...common, vocab_size: 151936, hidden_size: 4096, intermediate_size: 22016, num_hidden_layers: 32, num_attention_heads: 32, num_key_value_heads: 32, head_dim: 128, max_position_embeddings: 32768, use_sliding_window: false, sliding_window: 4096, max_window_layers: 28 },
  smollm3: { ...common, vocab_size: 128256, hidden_size: 2048, intermediate_size: 11008, num_hidden_layers: 36, num_attention_heads: 16, num_key_value_heads: 4, max_position_embeddings: 32768, tie_word_embeddings: true, rope_theta: 2_000_000, no_rope_layer_interval: 4, use_sliding_window: false, sliding_window: null },
  granite: { ...common, vocab_size: 32000, hidden_size: 4096, intermediate_size: 11008, num_hidden_layers: 32, num_attention_heads: 32, max_position_embeddings: 2048, embedding_multiplier: 1, residual_multiplier: 1, attention_multiplier: 1, logits_scaling: 1 },
  gemma: { ...common, hidden_act: 'gelu_pytorch_tanh', vocab_size: 256000, hidden_size: 3072, intermediate_size: 24576, num_hidden_layers: 28, num_attention_heads: 16, num_key_value_heads: 16, head_dim: 256, max_position_embeddings: 8192, tie_word_embeddings: true },
  gemma2: { ...common, hidden_activation: 'gelu_pytorch_tanh', vocab_size: 256000, hidden_size: 2304, intermediate_size: 9216, num_hidden_layers: 26, num_attention_heads: 8, num_key_value_heads: 4, head_dim: 256, max_position_embeddings: 8192, tie_word_embeddings: true, query_pre_attn_scalar: 256, sliding_window: 4096, final_logit_softcapping: 30, attn_logit_softcapping: 50 },
  gemma3_text: { ...common, hidden_activation: 'gelu_pytorch_tanh', vocab_size: 262208, hidden_size: 2304, intermediate_size: 9216, num_hidden_layers: 26, num_attention_heads: 8, num_key_value_heads: 4, head_dim: 256, max_position_embeddings: 131072, tie_word_embeddings: true, query_pre_attn_scalar: 256, sliding_window: 4096, rope_theta: 1_000_000, final_logit_softcapping: null, attn_logit_softcapping: null },
  phi3: { ...common, rms_norm_eps: 1e-5, vocab_size: 32064, hidden_size: 3072, intermediate_size: 8192, num_hidden_layers: 32, num_attention_heads: 32, max_position_embeddings: 4096, original_max_position_embeddings: 4096, sliding_window: null },
  olmo2: { ...common, rms_norm_eps: 1e-5, vocab_size: 50304, hidden_size: 4096, intermediate_size: 11008, num_hidden_layers: 32, num_attention_heads: 32, max_position_embeddings: 2048 },
} as const;

/** smollm3's default no_rope_layers: 0 (NoPE) for every no_rope_layer_interval-th layer, 1 for the others. */
export function defaultNoRopeLayers(layers: number, interval: number): number[] {
  return Array.from({ length: layers }, (_, i) => ((i + 1) % interval !== 0 ? 1 : 0));
}

/** gemma2's and gemma3_text's default layer_types: every `pattern`-th layer full, the others sliding. */
export function defaultLayerTypes(layers: number, pattern: number): string[] {
  return Array.from({ length: layers }, (_, i) => ((i + 1) % pattern !== 0 ? 'sliding_attention' : 'full_attention'));
}

/** The families whose layers differ by layer_types (sliding or full attention). */
export const LAYER_TYPED: readonly LlamaFamilyType[] = ['gemma2', 'gemma3_text'];

/** The families whose layer_types slide only with use_sliding_window (by default from max_window_layers or NoPE layers). */
export const SLIDING_IF_ENABLED: readonly LlamaFamilyType[] = ['qwen2', 'qwen3', 'smollm3'];

function slidingWindow(c: LlamaFamilyConfig, layer: number): number | null {
  const sliding = c.layer_types?.[layer] === 'sliding_attention';
  if (LAYER_TYPED.includes(c.model_type)) return sliding ? c.sliding_window! : null;
  if (SLIDING_IF_ENABLED.includes(c.model_type)) return sliding && c.use_sliding_window ? (c.sliding_window ?? null) : null;
  return c.model_type === 'mistral' || c.model_type === 'phi3' ? (c.sliding_window ?? null) : null;
}

/**
 * qwen2's, qwen3's and smollm3's default layer_types: with use_sliding_window and a window, sliding from layer
 * max_window_layers on (qwen2, qwen3) or in the NoPE layers (smollm3); full everywhere otherwise.
 */
export function defaultWindowedLayerTypes(c: LlamaFamilyConfig): string[] {
  const windowed = c.use_sliding_window === true && c.sliding_window !== null && c.sliding_window !== undefined;
  const slides = (i: number) => windowed && (c.model_type === 'smollm3' ? c.no_rope_layers![i] === 0 : i >= c.max_window_layers!);
  return Array.from({ length: c.num_hidden_layers }, (_, i) => (slides(i) ? 'sliding_attention' : 'full_attention'));
}

function ropeOf(c: LlamaFamilyConfig, layer: number): string | null {
  if (c.model_type === 'smollm3' && c.no_rope_layers?.[layer] === 0) return null;
  return c.model_type === 'gemma3_text' ? c.layer_types![layer] : 'default';
}

function attentionScale(c: LlamaFamilyConfig): number {
  if (c.model_type === 'granite') return c.attention_multiplier!;
  if (c.model_type === 'gemma2' || c.model_type === 'gemma3_text') return c.query_pre_attn_scalar! ** -0.5;
  return 1 / Math.sqrt(c.head_dim);
}

/** What layer `layer` of the decoder reads, with the family's options resolved. */
export function layerConfig(c: LlamaFamilyConfig, layer: number): LlamaLayerConfig {
  const traits = FAMILY_TRAITS[c.model_type];
  const qwen2 = c.model_type === 'qwen2';
  const rope = ropeOf(c, layer);
  return {
    ...c,
    ...traits,
    hidden_act: (c.hidden_activation ?? c.hidden_act) as LlamaLayerConfig['hidden_act'],
    mlp_bias: c.mlp_bias && !traits.mlpWithoutBias,
    qkv_bias: qwen2 || c.attention_bias,
    o_bias: !qwen2 && c.attention_bias,
    rope,
    rotary_dim: rotaryDims(c, rope ?? 'default'),
    sliding_window: slidingWindow(c, layer),
    attn_softcap: c.model_type === 'gemma2' ? (c.attn_logit_softcapping ?? null) : null,
    attention_scale: attentionScale(c),
    residual_multiplier: c.model_type === 'granite' ? c.residual_multiplier! : 1,
  };
}

/**
 * The scalars around the decoder stack: embeddings times `embedding` (granite's embedding_multiplier, gemma's
 * √hidden_size rounded to float32 as transformers' buffer is), logits divided by `logits` (granite), then
 * soft-capped as c·tanh(x/c) with c = `logitsSoftcap` (gemma2, gemma3_text's final_logit_softcapping).
 */
export function outerScalars(c: LlamaFamilyConfig): { embedding: number; logits: number; logitsSoftcap: number | null } {
  const gemma = FAMILY_TRAITS[c.model_type].norm === 'gemma';
  const embedding = c.model_type === 'granite' ? c.embedding_multiplier! : gemma ? Math.fround(Math.sqrt(c.hidden_size)) : 1;
  const logitsSoftcap = c.model_type === 'gemma2' || c.model_type === 'gemma3_text' ? (c.final_logit_softcapping ?? null) : null;
  return { embedding, logits: c.model_type === 'granite' ? c.logits_scaling! : 1, logitsSoftcap };
}
