/**
 * A folder transformers.js loads: `AutoModelForCausalLM.from_pretrained(dir, { local_files_only: true })`
 * and `pipeline('text-generation', dir)`.
 *
 *   config.json              the model's config, plus "transformers.js_config" naming the dtype (and external data)
 *   generation_config.json   the checkpoint's (or bos/eos/pad from the config)
 *   tokenizer files, README  copied from the checkpoint folder
 *   onnx/model.onnx          the decoder graph (decoder-graph.ts), float32 weights; --dtype q4: onnx/model_q4.onnx
 *   onnx/model.onnx_data     the weights when they pass 2 GiB (onnx-file.ts)
 *
 * The folder is built under a temporary name and renamed into place: a failure leaves nothing.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFolderAtomically } from '@lorakit/core/io';
import type { CausalLM } from '../causal-lm.ts';
import { configJson } from '../config.ts';
import { TEXT_TOKEN_IDS, type Gemma3Config } from '../gemma3/config.ts';
import { copySideFiles } from '../save.ts';
import { decoderGraph, DECODER_OPSET } from './decoder-graph.ts';
import { withQ4Weights } from './matmul-nbits.ts';
import { writeOnnxFile, type OnnxFileOptions } from './onnx-file.ts';

export type OnnxDtype = 'fp32' | 'q4';

export interface OnnxExportOptions {
  /** The checkpoint folder the model came from: its tokenizer and generation settings are copied. */
  source: string;
  dtype?: OnnxDtype;
  /** Told each stage as it starts. */
  onStage?: (stage: string) => void;
  /** For tests: where weights go external (onnx-file.ts). */
  maxInlineBytes?: OnnxFileOptions['maxInlineBytes'];
}

export interface OnnxExportResult {
  files: string[];
  nodes: number;
  weights: number;
}

const FILE_NAMES: Record<OnnxDtype, string> = { fp32: 'model.onnx', q4: 'model_q4.onnx' };

export async function exportOnnx(model: CausalLM, out: string, { source, dtype = 'fp32', onStage = () => {}, maxInlineBytes }: OnnxExportOptions): Promise<OnnxExportResult> {
  onStage('tracing the decoder graph');
  const traced = decoderGraph(model);
  if (dtype === 'q4') onStage('quantizing the weights to 4 bits');
  const { graph, weights } = dtype === 'q4' ? withQ4Weights(traced.graph, traced.weights) : traced;
  const files: string[] = [];
  await writeFolderAtomically(out, async (dir) => {
    onStage('writing the ONNX model');
    await mkdir(join(dir, 'onnx'));
    const written = writeOnnxFile(join(dir, 'onnx', FILE_NAMES[dtype]), graph, weights, { opset: DECODER_OPSET, maxInlineBytes });
    files.push(...written.map((f) => `onnx/${f}`));
    const external = written.length - 1;
    const jsConfig = { dtype, ...(external > 0 && { use_external_data_format: { [FILE_NAMES[dtype]]: external } }) };
    await writeFile(join(dir, 'config.json'), `${exportedConfig(model, { 'transformers.js_config': jsConfig })}\n`);
    const copied = await copySideFiles(source, dir);
    if (!copied.includes('generation_config.json')) await writeFile(join(dir, 'generation_config.json'), `${JSON.stringify(generationConfig(model), null, 2)}\n`);
    files.push('config.json', ...new Set([...copied, 'generation_config.json']));
  });
  return { files, nodes: graph.nodes.length, weights: weights.size };
}

/**
 * config.json as transformers.js should read it. A gemma3 checkpoint (vision and language) is written as its
 * language model, gemma3_text, which is what the graph holds (transformers.js would look for a vision encoder);
 * with no final_logit_softcapping, since Gemma3ForConditionalGeneration's head has none.
 */
function exportedConfig(model: CausalLM, changes: Record<string, unknown>): string {
  if (model.config.model_type !== 'gemma3') return configJson(model.config, changes);
  const config = model.config as Gemma3Config;
  const ids = Object.fromEntries(TEXT_TOKEN_IDS.map((k) => [k, config[k]]));
  return configJson(config.text_config, { architectures: ['Gemma3ForCausalLM'], model_type: 'gemma3_text', final_logit_softcapping: null, ...ids, ...changes });
}

/** bos/eos/pad from the config, when the checkpoint has no generation_config.json. */
function generationConfig(model: CausalLM): Record<string, unknown> {
  const config = model.config as unknown as Record<string, unknown>;
  return Object.fromEntries(['bos_token_id', 'eos_token_id', 'pad_token_id'].filter((k) => config[k] !== undefined && config[k] !== null).map((k) => [k, config[k]]));
}

