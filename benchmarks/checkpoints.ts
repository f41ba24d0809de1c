/** Random checkpoints with the shapes of real models, written once into benchmarks/out/. */
import { copyFileSync, existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { Tensor, manualSeed } from '@lorakit/core';
import { mul } from '@lorakit/core/ops';
import { AutoModelForCausalLM, modelForConfig, saveModel, type LlamaFamilyConfig } from '@lorakit/models';
import { LoraConfig, configToJson, quantizeModel, writeAdapter } from '@lorakit/adapters';

export const SMOLLM2_SHAPES: LlamaFamilyConfig = {
  model_type: 'llama', vocab_size: 49152, hidden_size: 576, intermediate_size: 1536, num_hidden_layers: 30,
  num_attention_heads: 9, num_key_value_heads: 3, head_dim: 64, hidden_act: 'silu', max_position_embeddings: 2048,
  rms_norm_eps: 1e-5, tie_word_embeddings: true, attention_bias: false, mlp_bias: false, rope_theta: 10000,
  bos_token_id: 0, eos_token_id: 0, pad_token_id: null,
};

/**
 * Qwen3-0.6B's shapes (its config.json, less the fields lorakit does not read): 28 layers with q/k norms,
 * head_dim 128 (so q_proj is 1024 -> 2048), a 151936-token vocabulary tied to the embedding. 0.60B
 * parameters, 0.44B of them in the decoder's linear layers; 1.19 GB in bf16, 2.38 GB in float32.
 */
export const QWEN3_0_6B_SHAPES: LlamaFamilyConfig = {
  model_type: 'qwen3', vocab_size: 151936, hidden_size: 1024, intermediate_size: 3072, num_hidden_layers: 28,
  num_attention_heads: 16, num_key_value_heads: 8, head_dim: 128, hidden_act: 'silu', max_position_embeddings: 40960,
  rms_norm_eps: 1e-6, tie_word_embeddings: true, attention_bias: false, mlp_bias: false, rope_theta: 1000000,
  sliding_window: null, bos_token_id: 151643, eos_token_id: 151645, pad_token_id: null,
};

export async function randomCheckpoint(dir: string, config: LlamaFamilyConfig): Promise<string> {
  if (!existsSync(`${dir}/config.json`)) {
    manualSeed(0);
    await saveModel(modelForConfig(config), dir, { dtype: 'BF16' });
  }
  return dir;
}


export const TINYLLAMA_SHAPES: LlamaFamilyConfig = {
  model_type: 'llama', vocab_size: 32000, hidden_size: 2048, intermediate_size: 5632, num_hidden_layers: 22,
  num_attention_heads: 32, num_key_value_heads: 4, head_dim: 64, hidden_act: 'silu', max_position_embeddings: 2048,
  rms_norm_eps: 1e-5, tie_word_embeddings: false, attention_bias: false, mlp_bias: false, rope_theta: 10000,
  bos_token_id: 1, eos_token_id: 2, pad_token_id: null,
};

/** The same checkpoint quantized to NF4 (double quantization) in bitsandbytes' format, written once. */
export async function quantizedCheckpoint(source: string, dir: string): Promise<string> {
  if (!existsSync(`${dir}/config.json`)) {
    const model = await AutoModelForCausalLM.fromPretrained(source);
    await quantizeModel(model, { quantType: 'nf4', doubleQuant: true });
    await saveModel(model, dir, { dtype: 'BF16' });
  }
  return dir;
}

/** A PEFT adapter with random A and B (std 0.01) on q, k, v, o, gate, up and down of every layer, written once. */
export async function randomAdapter(dir: string, c: LlamaFamilyConfig, r: number, { layers = c.num_hidden_layers } = {}): Promise<string> {
  if (existsSync(`${dir}/adapter_config.json`)) return dir;
  const [q, kv] = [c.num_attention_heads * c.head_dim!, c.num_key_value_heads! * c.head_dim!];
  const shapes: Record<string, [number, number]> = {
    'self_attn.q_proj': [c.hidden_size, q], 'self_attn.k_proj': [c.hidden_size, kv], 'self_attn.v_proj': [c.hidden_size, kv], 'self_attn.o_proj': [q, c.hidden_size],
    'mlp.gate_proj': [c.hidden_size, c.intermediate_size], 'mlp.up_proj': [c.hidden_size, c.intermediate_size], 'mlp.down_proj': [c.intermediate_size, c.hidden_size],
  };
  manualSeed(1);
  const tensors = new Map<string, Tensor>();
  for (let layer = 0; layer < layers; layer++) {
    for (const [module, [inFeatures, outFeatures]] of Object.entries(shapes)) {
      const key = `base_model.model.model.layers.${layer}.${module}`;
      tensors.set(`${key}.lora_A.weight`, mul(Tensor.randn([r, inFeatures]), 0.01));
      tensors.set(`${key}.lora_B.weight`, mul(Tensor.randn([outFeatures, r]), 0.01));
    }
  }
  const config = new LoraConfig({ r, loraAlpha: 2 * r, targetModules: 'all-linear', taskType: 'CAUSAL_LM' });
  await writeAdapter(dir, configToJson(config, Object.keys(shapes).map((m) => m.split('.')[1])), tensors);
  return dir;
}

const TINY_CODE_LLAMA = 'examples/models/tiny-code-llama';

/**
 * `model`'s weights (linked) with tiny-code-llama's tokenizer beside them, in `dir`, for `lora train` and
 * transformers' Trainer: its ids (below 4096) fit every benchmark model's vocabulary.
 */
export function withTokenizer(model: string, dir: string): string {
  mkdirSync(dir, { recursive: true });
  for (const file of ['config.json', 'model.safetensors']) if (!existsSync(`${dir}/${file}`)) symlinkSync(resolve(model, file), `${dir}/${file}`);
  for (const file of ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json']) if (!existsSync(`${dir}/${file}`)) copyFileSync(`${TINY_CODE_LLAMA}/${file}`, `${dir}/${file}`);
  return dir;
}

/** A JSONL of `lines` long {"text"} records (the house-style examples, each line starting at another one): thousands of tokens each. */
export function longTexts(path: string, lines = 32): string {
  if (existsSync(path)) return path;
  const examples = readFileSync('examples/data/house-style/train.jsonl', 'utf8').split('\n').filter(Boolean).map((line) => JSON.parse(line) as { prompt: string; completion: string });
  const texts = examples.map((e) => e.prompt + e.completion);
  const records = Array.from({ length: lines }, (_, i) => JSON.stringify({ text: [...texts.slice(i), ...texts.slice(0, i)].join('\n') }));
  writeFileSync(path, `${records.join('\n')}\n`);
  return path;
}
