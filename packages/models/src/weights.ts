/**
 * Loading a checkpoint into a model built from its config. Strict: every
 * missing, unexpected and mis-shaped key is gathered into one error. Tied
 * weights are not "missing": `tie_word_embeddings` makes lm_head share the
 * embedding, as in transformers. What a checkpoint must hold comes from the
 * config (weight-layout.ts), so checkCheckpoint serves readers that never
 * build the model, such as the streaming merge. Stored keys are read through
 * the layout's key convention (checkpoint-keys.ts); what it leaves alone (Gemma 3's
 * vision tower) is neither loaded nor checked, only noted.
 */
import { findNonFiniteTensors } from '@lorakit/core';
import { Checkpoint, FileFormatError, quote } from '@lorakit/core/io';
import type { CausalLM } from './causal-lm.ts';
import type { ModelConfig } from './config.ts';
import { checkLayoutMatches, weightLayout, type WeightLayout } from './weight-layout.ts';
import { checkQuantizationConfig, loadQuantizedLayers } from './quantized.ts';

/** Legacy GPT-2 buffers transformers also ignores. */
const IGNORED = /\.attn\.(bias|masked_bias)$/;
const LISTED = 12;

export interface LoadWeightsOptions {
  /** Told about stale shards, tied copies and the like (default: process.emitWarning). */
  onWarning?: (message: string) => void;
}

function list(label: string, items: string[]): string {
  if (items.length === 0) return '';
  const shown = items.slice(0, LISTED).map((i) => `    ${i}`).join('\n');
  return `\n  ${label} (${items.length}):\n${shown}${items.length > LISTED ? `\n    ... and ${items.length - LISTED} more` : ''}`;
}

/** Stored dtypes that load as float tensors (bf16/f16 widened on read). */
const FLOAT_DTYPES = new Set(['F32', 'F16', 'BF16', 'F64']);

export interface CheckCheckpointOptions {
  /** Keys already consumed by 4-bit layers (loadQuantizedLayers): neither missing, unexpected nor checked here. */
  quantized?: Set<string>;
}

/**
 * Whether a checkpoint holds exactly the tensors `layout` describes, in the
 * shapes it gives and as float tensors, from the headers alone: one
 * CheckpointMismatch listing every missing, unexpected, doubly stored and
 * mis-shaped tensor, or UnsupportedDtype. What loadWeights and the streaming
 * merge both check. Returns the stored key of each model tensor the
 * checkpoint holds (tied copies included), by name.
 */
export function checkCheckpoint(checkpoint: Checkpoint, layout: WeightLayout, { quantized = new Set() }: CheckCheckpointOptions = {}): Map<string, string> {
  const dir = checkpoint.dir;
  const stored = new Map<string, string>();
  const doubled: string[] = [];
  for (const key of checkpoint.names()) {
    const name = layout.keys.nameOf(key);
    if (name === null) continue;
    if (stored.has(name)) doubled.push(`${quote(stored.get(name)!)} and ${quote(key)} are both ${name}`);
    else stored.set(name, key);
  }
  const expected = [...layout.tensors].filter(([name]) => !quantized.has(name));
  const available = [...stored.keys()].filter((n) => !IGNORED.test(n) && !quantized.has(n));
  const missing = expected.filter(([n]) => !stored.has(n)).map(([n]) => layout.keys.storedOf(n));
  const unexpected = available.filter((n) => !layout.tensors.has(n) && !layout.tied.has(n)).map((n) => stored.get(n)!);
  const mismatched = expected.flatMap(([name, want]) => {
    if (!stored.has(name)) return [];
    const shape = checkpoint.entry(stored.get(name)!).shape;
    return shape.length === want.length && shape.every((d, i) => d === want[i]) ? [] : [`${stored.get(name)}: checkpoint [${shape}], config.json gives [${want}]`];
  });
  if (missing.length + unexpected.length + doubled.length + mismatched.length > 0) {
    const detail = `does not fit the ${layout.modelType} model that config.json describes:${list('missing', missing)}${list('unexpected', unexpected.map((u) => quote(u)))}${list('stored twice', doubled)}${list('shape mismatches', mismatched)}`;
    throw new FileFormatError('CheckpointMismatch', dir, detail);
  }
  for (const [name] of expected) {
    const { dtype } = checkpoint.entry(stored.get(name)!);
    if (!FLOAT_DTYPES.has(dtype)) throw new FileFormatError('UnsupportedDtype', dir, `${quote(stored.get(name)!)} is ${dtype}, not a float tensor`);
  }
  return stored;
}

/** The one-line note that lorakit leaves part of the checkpoint alone (Gemma 3's vision tower), when it holds such tensors. */
function noteLeftAlone(checkpoint: Checkpoint, layout: WeightLayout, onWarning: (message: string) => void): void {
  const count = checkpoint.names().filter((n) => layout.keys.nameOf(n) === null).length;
  if (count > 0) onWarning(`${checkpoint.dir}: lorakit loads the language model only; ${layout.keys.leftAlone} (${count} tensors) are left alone`);
}

/** A checkpoint holding NaN or Infinity loads (it can be inspected), but never silently: it would generate garbage. */
function warnNonFinite(model: CausalLM, dir: string, onWarning: (message: string) => void): void {
  const found = findNonFiniteTensors(model);
  if (found.length === 0) return;
  const listed = found.slice(0, LISTED).map(({ name, count }) => `${quote(name)} (${count} ${count === 1 ? 'value' : 'values'})`).join(', ');
  onWarning(`${dir}: NaN or Infinity in ${listed}${found.length > LISTED ? `, and ${found.length - LISTED} more tensors` : ''}`);
}

export async function loadWeights(model: CausalLM, dir: string, { onWarning = (m) => process.emitWarning(m) }: LoadWeightsOptions = {}): Promise<void> {
  const layout = weightLayout(model.config as ModelConfig);
  checkLayoutMatches(layout, model);
  const checkpoint = await Checkpoint.open(dir);
  try {
    checkpoint.warnings.forEach(onWarning);
    const quantized = checkQuantizationConfig((model.config as { quantization_config?: unknown }).quantization_config, `${dir}/config.json`) ? await loadQuantizedLayers(model, checkpoint) : new Set<string>();
    const stored = checkCheckpoint(checkpoint, layout, { quantized });
    noteLeftAlone(checkpoint, layout, onWarning);
    const aliases = new Map(model.tiedWeights());
    for (const alias of aliases.keys()) if (stored.has(alias)) onWarning(`${dir}: ${stored.get(alias)} is tied to ${layout.keys.storedOf(aliases.get(alias)!)} (tie_word_embeddings); the stored copy is ignored`);
    for (const [name, target] of model.stateDict()) {
      if (aliases.has(name) || quantized.has(name)) continue; // tied, or loaded into its Linear4bit already
      target.data = (await checkpoint.read(stored.get(name)!)).to('float32').data; // bf16/f16 were widened on read; the parameter takes the array as is
    }
    warnNonFinite(model, dir, onWarning);
  } finally {
    await checkpoint.close();
  }
}
