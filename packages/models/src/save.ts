/**
 * save_pretrained for a model: config.json and safetensors weights (sharded
 * above `maxShardSize`), tied copies left out as transformers leaves them,
 * each under the key transformers saves it with (checkpoint-keys.ts: a gemma3
 * model's language model as language_model.model.*; it has no vision tower to save).
 *
 *   await saveModel(model, 'out/model', { dtype: 'BF16' });
 */
import { copyFile, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Linear, Linear4bit, Linear8bit } from '@lorakit/core/nn';
import { saveShardedSafetensors, tensorRecord, writeFileAtomic, type SafetensorsDtype, type TensorRecord } from '@lorakit/core/io';
import type { CausalLM } from './causal-lm.ts';
import { checkpointKeys } from './checkpoint-keys.ts';
import { configJson } from './config.ts';

export interface SaveModelOptions {
  dtype?: 'F32' | 'BF16' | 'F16';
  maxShardSize?: number;
}

const TORCH_DTYPE: Record<string, string> = { F32: 'float32', BF16: 'bfloat16', F16: 'float16' };

/** The quantization_config transformers + bitsandbytes expect, when the model holds 4-bit layers. */
function quantizationConfig(model: CausalLM): { quantization_config?: Record<string, unknown> } {
  const layer = model.modules().find((m): m is Linear4bit => m instanceof Linear4bit);
  if (layer === undefined) return {};
  const q = layer.quantization;
  const skipped = model.namedModules().filter(([, m]) => m instanceof Linear).map(([n]) => n);
  return {
    quantization_config: {
      quant_method: 'bitsandbytes', load_in_4bit: true, load_in_8bit: false, bnb_4bit_quant_type: q.quantType, bnb_4bit_use_double_quant: q.doubleQuant,
      bnb_4bit_compute_dtype: 'float32', bnb_4bit_quant_storage: 'uint8', llm_int8_skip_modules: skipped.length > 0 ? skipped : null,
    },
  };
}

export async function saveModel(model: CausalLM, dir: string, { dtype = 'F32', maxShardSize = 5e9 }: SaveModelOptions = {}): Promise<string[]> {
  if (model.config.model_type === 'gemma3' && model.modules().some((m) => m instanceof Linear4bit)) {
    throw new Error('saveModel: a 4-bit gemma3 model is not saved, since lorakit reads gemma3 checkpoints in bf16, f16 or f32 only (QLoRA trains on it in memory: save the adapter)');
  }
  if (model.modules().some((m) => m instanceof Linear8bit)) {
    throw new Error('saveModel: a model with an 8-bit base (quantizeModel8bit) is not saved, since lorakit does not read 8-bit checkpoints back: save the adapter, or merge with { dequantize: true } first');
  }
  await mkdir(dir, { recursive: true });
  const aliases = new Set(model.tiedWeights().map(([alias]) => alias));
  const keys = checkpointKeys(model.config.model_type);
  const records = new Map<string, TensorRecord>();
  for (const [name, tensor] of model.stateDict()) {
    if (aliases.has(name)) continue;
    // 4-bit state keeps bitsandbytes' own dtypes: uint8 codes, float32 absmax and code books
    const stored: SafetensorsDtype = tensor.dtype === 'uint8' ? 'U8' : /\.weight\.(absmax|nested_absmax|quant_map|nested_quant_map)$/.test(name) ? 'F32' : dtype;
    records.set(keys.storedOf(name), tensorRecord(tensor, stored));
  }
  const written = await saveShardedSafetensors(dir, records, maxShardSize);
  const config = configJson(model.config, { dtype: TORCH_DTYPE[dtype], ...quantizationConfig(model) });
  await writeFileAtomic(join(dir, 'config.json'), (handle) => writeFile(handle, `${config}\n`));
  return [...written, 'config.json'];
}

/** The files beside the weights that a saved model keeps: generation settings, tokenizer, model card. */
export const SIDE_FILES = ['generation_config.json', 'tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'vocab.json', 'merges.txt', 'tokenizer.model', 'chat_template.jinja', 'README.md'];

/** Copies whichever SIDE_FILES exist in `from` into `to`; returns their names. */
export async function copySideFiles(from: string, to: string): Promise<string[]> {
  const copied: string[] = [];
  for (const name of SIDE_FILES) await copyFile(join(from, name), join(to, name)).then(() => copied.push(name), () => {});
  return copied;
}
