/** The fields of a Llama-family config.json that the modules read (transformers' names). */
export interface LlamaLayerConfig {
  hidden_size: number;
  intermediate_size: number;
  num_attention_heads: number;
  num_key_value_heads: number;
  head_dim: number;
  rms_norm_eps: number;
  attention_bias: boolean;
  mlp_bias: boolean;
  hidden_act: 'silu' | 'gelu' | 'gelu_pytorch_tanh' | 'relu';
}
