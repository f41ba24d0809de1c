/**
 * A LoRA adapter as a GGUF file llama.cpp applies at run time (`llama-cli -m model.gguf --lora adapter.gguf`,
 * ollama's ADAPTER), beside the base model's GGUF (models' export/gguf-model.ts):
 *
 *   general.type "adapter", adapter.type "lora", adapter.lora.alpha (float32: llama.cpp reads it as one and
 *   aborts on an integer), general.architecture the base's
 *   <base tensor>.lora_a [r, in] and .lora_b [out, r] (PEFT's lora_A and lora_B), float32; on the token
 *   embedding, lora_a is PEFT's lora_embedding_A transposed ([vocab, r])
 *   llama's architecture: lora_b's rows of q and k permuted as the base weights are
 *
 * llama.cpp scales every pair by alpha / r, r read from the tensors: an rsLoRA adapter or one with an
 * alpha_pattern has its own scaling folded into lora_b instead. What a GGUF adapter cannot hold is refused with
 * the reason: DoRA's magnitudes, modules_to_save copies, trained biases, LoRA on a head tied to the embedding
 * (the base GGUF has no head of its own). Each of these merges: `lora export --merge`.
 */
import type { Tensor } from '@lorakit/core';
import { floatValues, writeGguf, type GgufTensor } from '@lorakit/core/io';
import { GGUF_ARCHITECTURES, ggufTensorName, qkHeads, toInterleaved, type LlamaFamilyConfig } from '@lorakit/models';
import type { PeftModel } from './peft-model.ts';
import { LoraEmbedding } from './lora-embedding.ts';
import { isLoraLayer, type LoraLayer } from './lora-layers.ts';

/** The LoRA layers, named as in the model (no base_model.model. prefix). */
function layersOf(peft: PeftModel): Array<[string, LoraLayer]> {
  return peft.model.namedModules().filter((entry): entry is [string, LoraLayer] => isLoraLayer(entry[1]));
}

/** Why the adapter cannot be a GGUF adapter, or null. */
function refusal(peft: PeftModel, adapter: string): string | null {
  const config = peft.peftConfig.get(adapter)!;
  if (config.useDora) return 'DoRA\'s magnitudes have no place in a GGUF adapter';
  if ((config.modulesToSave ?? []).length > 0) return `modules_to_save (${config.modulesToSave!.join(', ')}) has no place in a GGUF adapter`;
  if (config.bias !== 'none') return `trained biases (bias "${config.bias}") have no place in a GGUF adapter`;
  const tied = peft.model.tiedWeights().map(([alias]) => alias.replace(/\.weight$/, ''));
  const head = layersOf(peft).find(([name]) => tied.includes(name));
  if (head !== undefined) return `LoRA on ${head[0]}, a head tied to the embedding, has no tensor of its own in the base GGUF`;
  return null;
}

/** Write adapter `adapter` of `peft` as the GGUF file `path`. */
export function writeGgufAdapter(peft: PeftModel, adapter: string, path: string): void {
  const config = peft.model.config as LlamaFamilyConfig;
  const architecture = GGUF_ARCHITECTURES[config.model_type];
  if (architecture === undefined) throw new Error(`a ${config.model_type} adapter cannot be written as GGUF yet (lorakit writes ${Object.keys(GGUF_ARCHITECTURES).join(', ')})`);
  const refused = refusal(peft, adapter);
  if (refused !== null) throw new Error(`${refused}; merge it into the model instead (lora export --merge)`);
  const alpha = peft.peftConfig.get(adapter)!.loraAlpha;
  const tensors: GgufTensor[] = [];
  for (const [name, layer] of layersOf(peft)) {
    if (!layer.settings.has(adapter)) continue;
    const { r, scaling } = layer.settings.get(adapter)!;
    const weight = ggufTensorName(`${name}.weight`, config.model_type);
    if (weight === null) throw new Error(`LoRA on ${name}: llama.cpp's ${architecture.arch} architecture has no such weight`);
    const heads = architecture.permuteQK ? qkHeads(`${name}.weight`, config) : null;
    const [a, b] = layer instanceof LoraEmbedding ? [layer.lora_embedding_A.get(adapter)!.transpose(0, 1), layer.lora_embedding_B.get(adapter)!] : [layer.lora_A.get(adapter)!.weight, layer.lora_B.get(adapter)!.weight];
    const folded = scaling / (alpha / r); // 1 unless rsLoRA or an alpha_pattern: llama.cpp applies alpha / r
    tensors.push({ name: `${weight}.lora_a`, shape: a.shape, type: 'F32', values: () => floatValues(a) });
    tensors.push({ name: `${weight}.lora_b`, shape: b.shape, type: 'F32', values: () => loraB(b, folded, heads) });
  }
  writeGguf(path, [
    ['general.architecture', { type: 'string', value: architecture.arch }],
    ['general.type', { type: 'string', value: 'adapter' }],
    ['adapter.type', { type: 'string', value: 'lora' }],
    ['adapter.lora.alpha', { type: 'f32', value: alpha }],
  ], tensors);
}

/** lora_b [out, r] times `folded`, its q/k rows in Meta's layout when `heads` is given. */
function loraB(b: Tensor, folded: number, heads: number | null): Float32Array {
  const scaled = folded === 1 ? floatValues(b) : floatValues(b).map((v) => v * folded);
  return heads === null ? scaled : toInterleaved(scaled, b.shape[0], b.shape[1], heads);
}
