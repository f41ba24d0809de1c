/**
 * Llama-family configs with transformers' defaults. Field names are transformers' own.
 *
 * One decoder serves every family; a family is its defaults plus the options
 * layerConfig reads off its fields:
 *   mistral  sliding_window
 *   qwen2    q/k/v biases, never o_proj's
 *   qwen3    q_norm / k_norm (RMSNorm over head_dim, per head, before RoPE); head_dim 128 by default
 *   smollm3  no_rope_layers[i] = 0: layer i has no rotary positions (NoPE)
 *   granite  embedding_multiplier, residual_multiplier, attention_multiplier (the attention scale), logits_scaling
 */
export interface RopeParameters {
  rope_type?: string;
  type?: string;
  rope_theta?: number;
  factor?: number;
  low_freq_factor?: number;
  high_freq_factor?: number;
  original_max_position_embeddings?: number;
}

export type LlamaFamilyType = 'llama' | 'mistral' | 'qwen2' | 'qwen3' | 'smollm3' | 'granite';

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
}

/** The fields one decoder layer reads. */
export type LlamaLayerConfig = Pick<LlamaFamilyConfig, 'hidden_size' | 'intermediate_size' | 'num_attention_heads' | 'num_key_value_heads' | 'head_dim' | 'rms_norm_eps' | 'mlp_bias' | 'hidden_act'> & {
  /** Biases on q, k and v (qwen2, or llama's attention_bias). */
  qkv_bias: boolean;
  /** Bias on o_proj (llama's attention_bias; never for qwen2). */
  o_bias: boolean;
  /** q_norm / k_norm over head_dim before RoPE (qwen3). */
  qk_norm: boolean;
  /** Rotary positions in this layer (false: smollm3's NoPE layers). */
  rope: boolean;
  /** Scale of q·kᵀ: 1/√head_dim, or granite's attention_multiplier. */
  attention_scale: number;
  /** Factor on each sublayer's output before the residual add (granite), else 1. */
  residual_multiplier: number;
};

const common = { hidden_act: 'silu', rms_norm_eps: 1e-6, tie_word_embeddings: false, attention_bias: false, mlp_bias: false, rope_theta: 10000 } as const;

export const LLAMA_DEFAULTS = {
  llama: { ...common, vocab_size: 32000, hidden_size: 4096, intermediate_size: 11008, num_hidden_layers: 32, num_attention_heads: 32, max_position_embeddings: 2048 },
  mistral: { ...common, vocab_size: 32000, hidden_size: 4096, intermediate_size: 14336, num_hidden_layers: 32, num_attention_heads: 32, num_key_value_heads: 8, max_position_embeddings: 131072, sliding_window: 4096 },
  qwen2: { ...common, vocab_size: 151936, hidden_size: 4096, intermediate_size: 22016, num_hidden_layers: 32, num_attention_heads: 32, num_key_value_heads: 32, max_position_embeddings: 32768 },
  qwen3: { ...common, vocab_size: 151936, hidden_size: 4096, intermediate_size: 22016, num_hidden_layers: 32, num_attention_heads: 32, num_key_value_heads: 32, head_dim: 128, max_position_embeddings: 32768 },
  smollm3: { ...common, vocab_size: 128256, hidden_size: 2048, intermediate_size: 11008, num_hidden_layers: 36, num_attention_heads: 16, num_key_value_heads: 4, max_position_embeddings: 32768, tie_word_embeddings: true, rope_theta: 2_000_000, no_rope_layer_interval: 4 },
  granite: { ...common, vocab_size: 32000, hidden_size: 4096, intermediate_size: 11008, num_hidden_layers: 32, num_attention_heads: 32, max_position_embeddings: 2048, embedding_multiplier: 1, residual_multiplier: 1, attention_multiplier: 1, logits_scaling: 1 },
} as const;

/** Families whose MLP has no biases whatever mlp_bias says (transformers' modeling files hard-code bias=False). */
const MLP_WITHOUT_BIAS: readonly LlamaFamilyType[] = ['mistral', 'qwen2', 'qwen3'];

/** What layer `layer` of the decoder reads, with the family's options resolved. */
/** smollm3's default no_rope_layers: 0 (NoPE) for every no_rope_layer_interval-th layer, 1 for the others. */
export function defaultNoRopeLayers(layers: number, interval: number): number[] {
  return Array.from({ length: layers }, (_, i) => ((i + 1) % interval !== 0 ? 1 : 0));
}

export function layerConfig(c: LlamaFamilyConfig, layer: number): LlamaLayerConfig {
  const qwen2 = c.model_type === 'qwen2';
  return {
    ...c,
    mlp_bias: c.mlp_bias && !MLP_WITHOUT_BIAS.includes(c.model_type),
    qkv_bias: qwen2 || c.attention_bias,
    o_bias: !qwen2 && c.attention_bias,
    qk_norm: c.model_type === 'qwen3',
    rope: c.model_type !== 'smollm3' || c.no_rope_layers?.[layer] !== 0,
    attention_scale: c.model_type === 'granite' ? c.attention_multiplier! : 1 / Math.sqrt(c.head_dim),
    residual_multiplier: c.model_type === 'granite' ? c.residual_multiplier! : 1,
  };
}

/** The scalars around the decoder stack: embeddings times `embedding`, logits divided by `logits` (granite; else 1). */
export function outerScalars(c: LlamaFamilyConfig): { embedding: number; logits: number } {
  return c.model_type === 'granite' ? { embedding: c.embedding_multiplier!, logits: c.logits_scaling! } : { embedding: 1, logits: 1 };
}
