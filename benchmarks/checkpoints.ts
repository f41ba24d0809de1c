/** Random checkpoints with the shapes of real models, written once into benchmarks/out/. */
import { existsSync } from 'node:fs';
import { manualSeed } from '@lorakit/core';
import { modelForConfig, saveModel, type LlamaFamilyConfig } from '@lorakit/models';

export const SMOLLM2_SHAPES: LlamaFamilyConfig = {
  model_type: 'llama', vocab_size: 49152, hidden_size: 576, intermediate_size: 1536, num_hidden_layers: 30,
  num_attention_heads: 9, num_key_value_heads: 3, head_dim: 64, hidden_act: 'silu', max_position_embeddings: 2048,
  rms_norm_eps: 1e-5, tie_word_embeddings: true, attention_bias: false, mlp_bias: false, rope_theta: 10000,
  bos_token_id: 0, eos_token_id: 0, pad_token_id: null,
};

export async function randomCheckpoint(dir: string, config: LlamaFamilyConfig): Promise<string> {
  if (!existsSync(`${dir}/config.json`)) {
    manualSeed(0);
    await saveModel(modelForConfig(config), dir, { dtype: 'BF16' });
  }
  return dir;
}

