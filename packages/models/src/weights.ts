/**
 * Loading a checkpoint into a model built from its config. Strict: every
 * missing, unexpected and mis-shaped key is gathered into one error. Tied
 * weights are not "missing": `tie_word_embeddings` makes lm_head share the
 * embedding, as in transformers.
 */
import { Checkpoint, FileFormatError, quote } from '@lorakit/core/io';
import type { CausalLM } from './causal-lm.ts';
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

export async function loadWeights(model: CausalLM, dir: string, { onWarning = (m) => process.emitWarning(m) }: LoadWeightsOptions = {}): Promise<void> {
  const checkpoint = await Checkpoint.open(dir);
  try {
    checkpoint.warnings.forEach(onWarning);
    const quantized = checkQuantizationConfig((model.config as { quantization_config?: unknown }).quantization_config, `${dir}/config.json`) ? await loadQuantizedLayers(model, checkpoint) : new Set<string>();
    const aliases = new Map(model.tiedWeights());
    const expected = new Map([...model.stateDict()].filter(([name]) => !aliases.has(name)));
    const available = checkpoint.names().filter((n) => !IGNORED.test(n));
    const missing = [...expected.keys()].filter((n) => !checkpoint.has(n));
    const unexpected = available.filter((n) => !expected.has(n) && !aliases.has(n));
    const mismatched = [...expected].flatMap(([name, t]) => {
      if (!checkpoint.has(name) || quantized.has(name)) return [];
      const shape = checkpoint.entry(name).shape;
      return shape.length === t.ndim && shape.every((d, i) => d === t.shape[i]) ? [] : [`${name}: checkpoint [${shape}], config.json gives [${t.shape}]`];
    });
    if (missing.length + unexpected.length + mismatched.length > 0) {
      const detail = `does not fit the ${model.config.model_type} model that config.json describes:${list('missing', missing)}${list('unexpected', unexpected.map((u) => quote(u)))}${list('shape mismatches', mismatched)}`;
      throw new FileFormatError('CheckpointMismatch', dir, detail);
    }
    for (const alias of aliases.keys()) if (checkpoint.has(alias)) onWarning(`${dir}: ${alias} is tied to ${aliases.get(alias)} (tie_word_embeddings); the stored copy is ignored`);
    for (const [name, target] of expected) {
      if (quantized.has(name)) continue; // loaded into its Linear4bit already
      const loaded = await checkpoint.read(name);
      if (!loaded.isFloat) throw new FileFormatError('UnsupportedDtype', dir, `${quote(name)} is ${checkpoint.entry(name).dtype}, not a float tensor`);
      target.data = loaded.to('float32').data; // bf16/f16 were widened on read; the parameter takes the array as is
    }
  } finally {
    await checkpoint.close();
  }
}

