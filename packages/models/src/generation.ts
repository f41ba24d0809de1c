/**
 * Text generation with a key/value cache: the prompt runs once, then one
 * token per step. Batches are left-padded, with positions counted over real
 * tokens only (as transformers' generate does). Stops at EOS or the budget.
 *
 *   const [ids] = generate(model, [tok.encode('def f(')], { maxNewTokens: 40 });
 *   generate(model, prompts, { temperature: 0.8, topP: 0.95, seed: 1, onToken: (t) => ... });
 */
import { Generator, Tensor, noGrad } from '@lorakit/core';
import type { CausalLMInputs, CausalLMOutput, KVCache } from './causal-lm.ts';
import type { ModelConfig } from './config.ts';

/** A CausalLM, or a PeftModel around one. */
export interface GenerativeModel {
  readonly config: ModelConfig;
  newCache(): KVCache;
  call(inputs: CausalLMInputs): CausalLMOutput;
}
import { argmax, sample } from './sampling.ts';

export interface GenerateOptions {
  maxNewTokens?: number;
  /** Sample instead of greedy decoding (implied by a temperature, topK or topP). */
  doSample?: boolean;
  temperature?: number;
  topK?: number;
  topP?: number;
  seed?: number;
  /** Generation stops for a row once it emits one of these (default: the config's eos_token_id). */
  eosTokenId?: number | number[] | null;
  /** Fills finished rows and left padding (default: the config's pad_token_id, else the EOS). */
  padTokenId?: number | null;
  /** Called after every step with the token each unfinished row just received. */
  onToken?: (tokens: Array<{ row: number; token: number }>) => void;
}

function idsOf(value: number | number[] | null | undefined): number[] {
  return value === null || value === undefined ? [] : Array.isArray(value) ? value : [value];
}

function checkOptions(o: GenerateOptions): void {
  if (!(Number.isInteger(o.maxNewTokens ?? 1) && (o.maxNewTokens ?? 1) >= 0)) throw new Error(`generate: maxNewTokens must be a non-negative integer, got ${o.maxNewTokens}`);
  if (o.temperature !== undefined && !(o.temperature > 0)) throw new Error(`generate: temperature must be > 0, got ${o.temperature}`);
  if (o.topK !== undefined && !(Number.isInteger(o.topK) && o.topK > 0)) throw new Error(`generate: topK must be a positive integer, got ${o.topK}`);
  if (o.topP !== undefined && !(o.topP > 0 && o.topP <= 1)) throw new Error(`generate: topP must be in (0, 1], got ${o.topP}`);
}

/** A row of logits to choose from; NaN or Infinity there (weights that hold them) would give garbage, not text. */
function checkFinite(row: Float32Array, step: number, b: number): Float32Array {
  const bad = row.find((v) => !Number.isFinite(v));
  if (bad !== undefined) throw new Error(`generate: the logits of row ${b} at step ${step} hold ${bad}: the model's weights (or an adapter's) hold NaN or Infinity`);
  return row;
}

/** Returns each row's prompt followed by its new tokens (no padding). */
export function generate(model: GenerativeModel, prompts: number[][], options: GenerateOptions = {}): number[][] {
  checkOptions(options);
  if (prompts.length === 0 || prompts.some((p) => p.length === 0)) throw new Error('generate: every prompt needs at least one token');
  const { maxNewTokens = 20, onToken } = options;
  const eos = idsOf(options.eosTokenId === undefined ? model.config.eos_token_id : options.eosTokenId);
  const pad = options.padTokenId ?? model.config.pad_token_id ?? eos[0] ?? 0;
  const sampling = options.doSample || options.temperature !== undefined || options.topK !== undefined || options.topP !== undefined;
  const generator = new Generator(options.seed ?? 0);
  const choose = (row: Float32Array) =>
    sampling ? sample(row, { temperature: options.temperature ?? 1, topK: options.topK ?? null, topP: options.topP ?? null, generator }) : argmax(row);

  const batch = prompts.length;
  const width = Math.max(...prompts.map((p) => p.length));
  const mask = prompts.map((p) => [...new Array(width - p.length).fill(0), ...new Array(p.length).fill(1)]);
  const positions = prompts.map((p) => [...new Array(width - p.length).fill(1), ...p.map((_, i) => i)]);
  const outputs = prompts.map((p) => [...p]);
  const finished = new Array<boolean>(batch).fill(false);
  const sequences = prompts.map((p) => [...new Array(width - p.length).fill(pad), ...p]); // [B, width + step], left-padded
  let cache = model.newCache();

  return noGrad(() => {
    let inputIds = Tensor.fromArray(sequences, 'int32');
    let positionIds = Tensor.fromArray(positions, 'int32');
    for (let step = 0; step < maxNewTokens; step++) {
      if (cache.staleAt(sequences[0].length)) {
        cache = model.newCache();
        [inputIds, positionIds] = [Tensor.fromArray(sequences, 'int32'), Tensor.fromArray(positions, 'int32')];
      }
      const { logits } = model.call({ inputIds, attentionMask: Tensor.fromArray(mask, 'int32'), positionIds, cache, logitsToKeep: 1 });
      const vocab = logits.shape[2];
      const rowOf = (b: number) => checkFinite(logits.values.subarray(b * vocab, (b + 1) * vocab) as Float32Array, step, b);
      const next = Array.from({ length: batch }, (_, b) => (finished[b] ? pad : choose(rowOf(b))));
      const emitted: Array<{ row: number; token: number }> = [];
      next.forEach((token, b) => {
        if (finished[b]) return;
        outputs[b].push(token);
        emitted.push({ row: b, token });
        if (eos.includes(token)) finished[b] = true;
      });
      onToken?.(emitted);
      if (finished.every(Boolean)) break;
      mask.forEach((m) => m.push(1));
      next.forEach((token, b) => sequences[b].push(token));
      positions.forEach((p) => p.push(p[p.length - 1] + 1));
      inputIds = Tensor.fromArray(next.map((t) => [t]), 'int32');
      positionIds = Tensor.fromArray(positions.map((p) => [p[p.length - 1]]), 'int32');
    }
    return outputs;
  });
}
