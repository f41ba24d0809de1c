/**
 * The decoder graph: a whole causal LM as one ONNX graph with a key/value cache, in the convention of
 * transformers.js and Optimum (the names, shapes and symbols are theirs).
 *
 *   inputs   input_ids, position_ids          [batch_size, sequence_length] int64
 *            attention_mask                   [batch_size, past_sequence_length + sequence_length] int64
 *            past_key_values.{i}.key / .value [batch_size, Hkv, past_sequence_length, D] float32 (length 0 at first)
 *   outputs  logits                           [batch_size, sequence_length, V] float32
 *            present.{i}.key / .value         [batch_size, Hkv, past_sequence_length + sequence_length, D]
 *
 * The graph is the model's own forward, traced (core's compile/whole-graph.ts): the same ops, kernels and
 * weights as `generate` and training, LoRA layers as they are (merged, or their low-rank products apart). What
 * the forward computes in JavaScript from its inputs, the rope tables and the masks, is written here as nodes
 * on the graph's inputs (Rotary.graphTables, attentionBiasNodes); the weights become initializers named by their
 * state-dict keys.
 */
import { Tensor, type Module } from '@lorakit/core';
import { GraphBuilder, attentionBiasNodes, traceRun, writeGeneralized, type Sizes, type TracedRun } from '@lorakit/core/native';
import { attentionBias, expand } from '@lorakit/core/ops';
import type { LayerContext } from '../causal-lm.ts';
import type { GenerativeModel } from '../generation.ts';
import { LlamaModel } from '../llama/model.ts';
import { GPT2Model } from '../gpt2/model.ts';
import { unrotated, type Rotary, type RotaryTables } from '../rope.ts';

/** The opset of an exported graph: 17 (transformers.js' onnxruntime reads up to 22; every node lorakit writes has its opset-15 form there). */
export const DECODER_OPSET = 17;

export interface DecoderGraph {
  graph: GraphBuilder;
  /** The initializers' tensors, by name (state-dict keys), in the order the graph first reads them. */
  weights: Map<string, Tensor>;
  layers: number;
  kvHeads: number;
  headDim: number;
}

/**
 * Sizes the forward is traced at: batch B, new positions T, cached P, all S = P + T. Each differs from the others
 * in every dim and no two dims are equal within one, so a size baked by an op is solved without ambiguity.
 */
const TRACED_SIZES: readonly Sizes[] = [
  { B: 2, T: 3, P: 5, S: 8 },
  { B: 3, T: 5, P: 2, S: 7 },
  { B: 5, T: 2, P: 4, S: 6 },
];

/** The graph of `model`: a CausalLM, or a PeftModel around one (its LoRA layers as they are). */
export function decoderGraph(model: GenerativeModel & Module): DecoderGraph {
  const family = familyOf(model);
  const wasTraining = model.training;
  model.eval();
  try {
    const runs = TRACED_SIZES.map((sizes) => traceStep(model, family, sizes));
    return { ...writeGraph(family, runs.map((r) => r.run), runs[0].context, runs[0].vocab, new Map(weightsOf(model))), layers: family.layers, kvHeads: family.kvHeads, headDim: family.headDim };
  } finally {
    model.train(wasTraining);
  }
}

/** What the graph must know of a model: its cache's shape, and what its layers read from their context. */
interface Family {
  layers: number;
  kvHeads: number;
  headDim: number;
  /** The ropes the layers use by name (null: a NoPE layer), none for learned positions. */
  rotaries: Map<string, Rotary>;
  ropes: Set<string | null>;
  windows: Set<number | null>;
}

/** The decoder inside `outer`: a llama-family model (gemma3's language model too) or GPT-2's. */
function familyOf(outer: Module & { config: GenerativeModel['config'] }): Family {
  const decoder = [outer, ...outer.modules()].find((m) => m instanceof LlamaModel || m instanceof GPT2Model);
  if (decoder instanceof LlamaModel) {
    const { layers, rotaries } = decoder;
    const { kvHeads, headDim } = layers[0].self_attn;
    const configs = layers.map((layer) => layer.self_attn.config);
    return { layers: layers.length, kvHeads, headDim, rotaries, ropes: new Set(configs.map((c) => c.rope)), windows: new Set(configs.map((c) => c.sliding_window)) };
  }
  if (decoder instanceof GPT2Model) {
    const { n_layer, n_head, n_embd } = decoder.config;
    return { layers: n_layer, kvHeads: n_head, headDim: n_embd / n_head, rotaries: new Map(), ropes: new Set(), windows: new Set([null]) };
  }
  throw new Error(`a ${outer.config.model_type} model cannot be written as a decoder graph (the llama families and gpt2 can)`);
}

/** A tensor the context hands out, by the name the trace knows it by: a rope table, a mask or the positions. */
type ContextSource = { name: string; rope: string | null; part: 'cos' | 'sin' } | { name: string; window: number | null } | { name: 'positions' };

/** One traced forward at `sizes`, on zeros: the ids, a cache of P positions and the context's tensors as sources. */
function traceStep(model: GenerativeModel & Module, family: Family, sizes: Sizes): { run: TracedRun; context: ContextSource[]; vocab: number } {
  const { B, T, P } = sizes;
  const inputs = new Map<string, Tensor>();
  const inputIds = Tensor.zeros([B, T], 'int64');
  inputs.set('input_ids', inputIds);
  const cache = model.newCache();
  for (let i = 0; i < family.layers; i++) {
    const [key, value] = [Tensor.zeros([B, family.kvHeads, P, family.headDim]), Tensor.zeros([B, family.kvHeads, P, family.headDim])];
    cache.layers[i] = { key, value };
    inputs.set(`past_key_values.${i}.key`, key).set(`past_key_values.${i}.value`, value);
  }
  const { context, sources } = contextSources(family, inputs, sizes);
  let vocab = 0;
  const run = traceRun({
    inputs,
    weights: new Map(weightsOf(model)),
    run: () => {
      const { logits } = model.call({ inputIds, cache, context });
      vocab = logits.shape[2];
      return [logits, ...cache.layers.flatMap((l) => [l.key!, l.value!])];
    },
  });
  return { run, context: sources, vocab };
}

/**
 * The rope tables, masks and positions the layers read (for B rows, as the graph's are), each a source of
 * the trace, and the context that hands them out.
 */
function contextSources(family: Family, inputs: Map<string, Tensor>, { B, T, P, S }: Sizes): { context: LayerContext; sources: ContextSource[] } {
  const sources: ContextSource[] = [];
  const positions = Array.from({ length: B }, () => Array.from({ length: T }, (_, t) => P + t));
  const tableOf = (rope: string | null): RotaryTables => {
    if (rope !== null) return family.rotaries.get(rope)!.tables(positions);
    const { cos, sin } = unrotated(tableOf('default'));
    return { cos: expand(cos, [B, ...cos.shape.slice(1)]), sin: expand(sin, [B, ...sin.shape.slice(1)]) };
  };
  const tables = new Map([...family.ropes].map((rope) => [rope, tableOf(rope)]));
  for (const [rope, table] of tables) {
    for (const part of ['cos', 'sin'] as const) {
      const name = `rope.${rope ?? 'none'}.${part}`;
      inputs.set(name, table[part]);
      sources.push({ name, rope, part });
    }
  }
  const mask = new Tensor(new BigInt64Array(B * S).fill(1n), [B, S]);
  const biases = new Map([...family.windows].map((window) => [window, attentionBias({ batch: B, queryLength: T, keyLength: S, causal: true, paddingMask: mask, slidingWindow: window })]));
  for (const [window, bias] of biases) {
    const name = `mask.${window ?? 'full'}`;
    inputs.set(name, bias);
    sources.push({ name, window });
  }
  const positionIds = Tensor.fromArray(positions, 'int64');
  inputs.set('positions', positionIds);
  sources.push({ name: 'positions' });
  return { context: { rotary: (rope) => tables.get(rope)!, bias: (window) => biases.get(window)!, positions: () => positionIds }, sources };
}

/** The parameters, buffers and derived tensors of the model (what the graph reads as weights), by state-dict key. */
export function weightsOf(model: Module): Array<[string, Tensor]> {
  const derived = model.namedModules().flatMap(([path, m]) => m.derivedTensors().map(([name, t]): [string, Tensor] => [`${path}.${name}`, t]));
  return [...model.namedParameters(), ...model.namedBuffers(), ...derived];
}

function writeGraph({ layers, kvHeads, headDim, rotaries }: Family, runs: TracedRun[], context: ContextSource[], vocab: number, weights: ReadonlyMap<string, Tensor>): { graph: GraphBuilder; weights: Map<string, Tensor> } {
  const g = new GraphBuilder('lorakit-decoder', 'float32');
  const ids = g.input('input_ids', 'int64', ['batch_size', 'sequence_length']);
  const mask = g.input('attention_mask', 'int64', ['batch_size', 'past_sequence_length + sequence_length']);
  const positions = g.input('position_ids', 'int64', ['batch_size', 'sequence_length']);
  for (let i = 0; i < layers; i++) {
    for (const part of ['key', 'value']) g.input(`past_key_values.${i}.${part}`, 'float32', ['batch_size', kvHeads, 'past_sequence_length', headDim]);
  }
  const dim = (of: string, axis: number) => g.node('Gather', [g.node('Shape', [of]), g.int64Constant([axis])], { axis: 0 }); // int64 [1]
  const [B, T, S] = [dim(ids, 0), dim(ids, 1), dim(mask, 1)];
  const symbols = { B, T, S, P: g.node('Sub', [S, T]) };
  const queryLength = g.node('Squeeze', [T, g.int64Constant([0])]);
  const tables = new Map<string | null, { cos: string; sin: string }>();
  const tablesOf = (rope: string | null): { cos: string; sin: string } => {
    let found = tables.get(rope);
    if (found === undefined) {
      if (rope === null) {
        const { cos } = tablesOf('default');
        const like = (value: number) => g.node('Expand', [g.scalar(value), g.node('Shape', [cos])]);
        found = { cos: like(1), sin: like(0) };
      } else {
        found = rotaries.get(rope)!.graphTables(g, positions);
      }
      tables.set(rope, found);
    }
    return found;
  };
  for (const source of context) {
    const value = 'part' in source ? tablesOf(source.rope)[source.part] : 'window' in source ? attentionBiasNodes(g, mask, queryLength, source.window) : positions;
    g.addNode({ opType: 'Identity', input: [value], output: [source.name], attribute: [], domain: '' });
  }
  const outputs = writeGeneralized(g, runs, TRACED_SIZES, symbols);
  const outputNames = ['logits', ...Array.from({ length: layers }, (_, i) => [`present.${i}.key`, `present.${i}.value`]).flat()];
  outputs.forEach((value, i) => g.addNode({ opType: 'Identity', input: [value], output: [outputNames[i]], attribute: [], domain: '' }));
  g.output('logits', 'float32', ['batch_size', 'sequence_length', vocab]);
  for (let i = 0; i < layers; i++) {
    for (const part of ['key', 'value']) g.output(`present.${i}.${part}`, 'float32', ['batch_size', kvHeads, 'past_sequence_length + sequence_length', headDim]);
  }
  return { graph: g, weights: weightsRead(g, weights) };
}

/** The weights some node reads, in the order first read. */
function weightsRead(g: GraphBuilder, weights: ReadonlyMap<string, Tensor>): Map<string, Tensor> {
  const read = new Map<string, Tensor>();
  for (const node of g.nodes) for (const input of node.input) if (weights.has(input) && !read.has(input)) read.set(input, weights.get(input)!);
  return read;
}
