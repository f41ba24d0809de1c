/**
 * Text generation with a key/value cache: the prompt runs once, then one
 * token per step. Batches are left-padded, with positions counted over real
 * tokens only (as transformers' generate does). Stops at EOS or the budget.
 *
 *   const [ids] = generate(model, [tok.encode('def f(')], { maxNewTokens: 40 });
 *   generate(model, prompts, { temperature: 0.8, topP: 0.95, seed: 1, onToken: (t) => ... });
 */
import { Generator, Module, Tensor, noGrad } from '@lorakit/core';
import { staleCache, type CausalLMInputs, type CausalLMOutput, type KVCache } from './causal-lm.ts';
import type { ModelConfig } from './config.ts';
import { GraphDecoder, type DecoderDtype } from './decoding.ts';
import { argmax, sample } from './sampling.ts';

/** A CausalLM, or a PeftModel around one. */
export interface GenerativeModel {
  readonly config: ModelConfig;
  newCache(): KVCache;
  call(inputs: CausalLMInputs): CausalLMOutput;
}

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
  /**
   * 'graph' (default): the decoder graph `lora export` ships, one onnxruntime session (decoding.ts); a model it
   * cannot hold (a forward hook, a family it does not know) decodes op by op, said once on stderr. 'eager': op by op.
   */
  decoder?: 'graph' | 'eager';
  /** The decoder graph's weights: float32, or 4-bit (MatMulNBits, block 32: `lora export --dtype q4`'s), quantized as generation starts. */
  dtype?: DecoderDtype;
}

function idsOf(value: number | number[] | null | undefined): number[] {
  return value === null || value === undefined ? [] : Array.isArray(value) ? value : [value];
}

function checkOptions(o: GenerateOptions): void {
  if (!(Number.isInteger(o.maxNewTokens ?? 1) && (o.maxNewTokens ?? 1) >= 0)) throw new Error(`generate: maxNewTokens must be a non-negative integer, got ${o.maxNewTokens}`);
  if (o.temperature !== undefined && !(o.temperature > 0)) throw new Error(`generate: temperature must be > 0, got ${o.temperature}`);
  if (o.topK !== undefined && !(Number.isInteger(o.topK) && o.topK > 0)) throw new Error(`generate: topK must be a positive integer, got ${o.topK}`);
  if (o.topP !== undefined && !(o.topP > 0 && o.topP <= 1)) throw new Error(`generate: topP must be in (0, 1], got ${o.topP}`);
  if (o.dtype === 'q4' && o.decoder === 'eager') throw new Error('generate: dtype q4 runs on the decoder graph; it cannot decode op by op');
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
  const stepper = stepperOf(model, options, batch, width + maxNewTokens);

  try {
    return noGrad(() => decodeAll());
  } finally {
    stepper.finish();
  }

  function decodeAll(): number[][] {
    let [inputIds, positionIds] = [sequences, positions];
    let cached = 0;
    for (let step = 0; step < maxNewTokens; step++) {
      if (staleCache(stepper.ropeSwitch, cached, sequences[0].length)) {
        stepper.restart();
        [inputIds, positionIds] = [sequences, positions];
      }
      const logits = stepper.step(inputIds, mask, positionIds); // [B, T or 1, V]
      cached = mask[0].length;
      const [, length, vocab] = logits.shape;
      const rowOf = (b: number) => checkFinite(logits.values.subarray(((b + 1) * length - 1) * vocab, (b + 1) * length * vocab) as Float32Array, step, b);
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
      inputIds = next.map((t) => [t]);
      positionIds = positions.map((p) => [p[p.length - 1]]);
    }
    return outputs;
  }
}

/** One step over the cached positions: the logits [B, T, V] (or only the last position's, [B, 1, V]). */
interface Stepper {
  /** The sequence length past which the cache goes stale (phi3's longrope), or null. */
  readonly ropeSwitch: number | null;
  step(ids: number[][], mask: number[][], positions: number[][]): Tensor;
  restart(): void;
  /** After the last step: what this generation alone held is released. */
  finish(): void;
}

const said = new Set<string>();

function stepperOf(model: GenerativeModel, { decoder = 'graph', dtype = 'fp32' }: GenerateOptions, batch: number, capacity: number): Stepper {
  let cache = model.newCache();
  const ropeSwitch = cache.ropeSwitch;
  if (decoder === 'graph' && model instanceof Module) {
    const graph = GraphDecoder.for(model, batch, capacity, dtype);
    if (graph instanceof GraphDecoder) return { ropeSwitch, step: (ids, mask, positions) => graph.step(ids, mask, positions), restart: () => graph.restart(), finish: () => graph.finish() };
    if (dtype === 'q4') throw new Error(`generate: dtype q4 needs the decoder graph, and this model has none: ${graph.eager}`);
    const line = `lorakit: generate decodes op by op, not on the decoder graph: ${graph.eager}`;
    if (!said.has(line)) console.error(line);
    said.add(line);
  }
  return {
    ropeSwitch,
    step: (ids, mask, positions) => {
      const [inputIds, attentionMask, positionIds] = [ids, mask, positions].map((rows) => Tensor.fromArray(rows, 'int32'));
      return model.call({ inputIds, attentionMask, positionIds, cache, logitsToKeep: 1 }).logits;
    },
    restart: () => (cache = model.newCache()),
    finish: () => {},
  };
}
