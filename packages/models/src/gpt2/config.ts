/** GPT-2 configs with transformers' defaults; field names are transformers' own. */
export interface GPT2Config {
  model_type: 'gpt2';
  vocab_size: number;
  n_positions: number;
  n_embd: number;
  n_layer: number;
  n_head: number;
  n_inner: number;
  activation_function: 'gelu_new' | 'gelu' | 'gelu_pytorch_tanh' | 'relu';
  layer_norm_epsilon: number;
  tie_word_embeddings: boolean;
  scale_attn_weights: boolean;
  scale_attn_by_inverse_layer_idx: boolean;
  reorder_and_upcast_attn: boolean;
  pad_token_id?: number | null;
  eos_token_id?: number | number[] | null;
  /** bitsandbytes 4-bit checkpoints (see quantized.ts). */
  quantization_config?: Record<string, unknown> | null;
  bos_token_id?: number | null;
}

export const GPT2_DEFAULTS = {
  vocab_size: 50257, n_positions: 1024, n_embd: 768, n_layer: 12, n_head: 12, activation_function: 'gelu_new',
  layer_norm_epsilon: 1e-5, tie_word_embeddings: true, scale_attn_weights: true, scale_attn_by_inverse_layer_idx: false, reorder_and_upcast_attn: false,
} as const;
