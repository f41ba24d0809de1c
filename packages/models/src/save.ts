/**
 * save_pretrained for a model: config.json and safetensors weights (sharded
 * above `maxShardSize`), tied copies left out as transformers leaves them.
 *
 *   await saveModel(model, 'out/model', { dtype: 'BF16' });
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { saveShardedSafetensors, tensorRecord, writeFileAtomic, type SafetensorsDtype, type TensorRecord } from '@lorakit/core';
import type { CausalLM } from './causal-lm.ts';

export interface SaveModelOptions {
  dtype?: 'F32' | 'BF16' | 'F16';
  maxShardSize?: number;
}

const TORCH_DTYPE: Record<string, string> = { F32: 'float32', BF16: 'bfloat16', F16: 'float16' };

export async function saveModel(model: CausalLM, dir: string, { dtype = 'F32', maxShardSize = 5e9 }: SaveModelOptions = {}): Promise<string[]> {
  await mkdir(dir, { recursive: true });
  const aliases = new Set(model.tiedWeights().map(([alias]) => alias));
  const records = new Map<string, TensorRecord>();
  for (const [name, tensor] of model.stateDict()) {
    if (aliases.has(name)) continue;
    // 4-bit state keeps bitsandbytes' own dtypes: uint8 codes, float32 absmax and code books
    const stored: SafetensorsDtype = tensor.dtype === 'uint8' ? 'U8' : /\.weight\.(absmax|nested_absmax|quant_map|nested_quant_map)$/.test(name) ? 'F32' : dtype;
    records.set(name, tensorRecord(tensor, stored));
  }
  const written = await saveShardedSafetensors(dir, records, maxShardSize);
  const config = { ...model.config, dtype: TORCH_DTYPE[dtype] };
  await writeFileAtomic(join(dir, 'config.json'), (handle) => writeFile(handle, `${JSON.stringify(config, null, 2)}\n`));
  return [...written, 'config.json'];
}
