/**
 * The decoder graph of every llama-family fixture, run by onnxruntime with its cache, against transformers'
 * reference logits (≤ 1e-4 on unpadded positions: the prompt in two steps, the second over a cache of the
 * first) and greedy tokens (exact, one token a step).
 */
import test from 'ava';
import { Tensor } from '@lorakit/core';
import { SafetensorsFile } from '@lorakit/core/io';
import { disposeKernels, nativeKernel } from '@lorakit/core/native';
import { argmax } from '../sampling.ts';
import { AutoModelForCausalLM } from '../auto.ts';
import { FIXTURES, maxMaskedDiff } from '../testing.ts';
import { decoderGraph, DECODER_OPSET, type DecoderGraph } from './decoder-graph.ts';
import { onnxModelBytes } from './onnx-file.ts';
import { slice } from '@lorakit/core/ops';

const CASES = ['llama', 'llama-rope-linear', 'llama-rope-llama3', 'llama-bf16-tied', 'mistral', 'qwen2', 'gpt2', 'qwen3', 'qwen3-sliding', 'smollm3', 'granite', 'gemma', 'gemma2', 'gemma3_text', 'gemma3', 'phi3', 'olmo2'];

const int64 = (rows: number[][]) => Tensor.fromArray(rows, 'int64');

/** One step of the graph: the logits and the cache after it. */
function stepper(name: string, decoder: DecoderGraph) {
  const bytes = onnxModelBytes(decoder.graph, decoder.weights, DECODER_OPSET);
  const kernel = nativeKernel(`test-decoder:${name}`, 'float32', () => bytes);
  const inputNames = decoder.graph.inputs.map(([n]) => n);
  return (ids: number[][], mask: number[][], positions: number[][], past: Tensor[] | null) => {
    const empty = Tensor.zeros([ids.length, decoder.kvHeads, 0, decoder.headDim]);
    const feeds = new Map<string, Tensor>([['input_ids', int64(ids)], ['attention_mask', int64(mask)], ['position_ids', int64(positions)]]);
    for (let i = 0; i < decoder.layers; i++) feeds.set(`past_key_values.${i}.key`, past?.[2 * i] ?? empty).set(`past_key_values.${i}.value`, past?.[2 * i + 1] ?? empty);
    const [logits, ...present] = kernel.run(inputNames.map((n) => feeds.get(n)!));
    return { logits, present };
  };
}

const rowsOf = (t: Tensor, from: number, to: number) => {
  const [b, s] = t.shape;
  const flat = t.toArray();
  return Array.from({ length: b }, (_, r) => flat.slice(r * s + from, r * s + to));
};
const range = (rows: number, from: number, to: number) => Array.from({ length: rows }, () => Array.from({ length: to - from }, (_, i) => from + i));

for (const name of CASES) {
  test(`${name}: the decoder graph with its cache gives transformers' logits and greedy tokens`, async (t) => {
    const model = await AutoModelForCausalLM.fromPretrained(`${FIXTURES}/${name}`);
    const ref = await SafetensorsFile.open(`${FIXTURES}/${name}/reference.safetensors`);
    const [inputIds, attentionMask, logits, greedy] = await Promise.all(['input_ids', 'attention_mask', 'logits', 'greedy'].map((n) => ref.read(n)));
    await ref.close();
    const step = stepper(name, decoderGraph(model));
    try {
      const [rows, length] = inputIds.shape;
      const split = 7;
      const first = step(rowsOf(inputIds, 0, split), rowsOf(attentionMask, 0, split), range(rows, 0, split), null);
      const second = step(rowsOf(inputIds, split, length), rowsOf(attentionMask, 0, length), range(rows, split, length), first.present);
      const firstDiff = maxMaskedDiff(first.logits, slice(logits, 1, 0, split), slice(attentionMask, 1, 0, split));
      const secondDiff = maxMaskedDiff(second.logits, slice(logits, 1, split, length), slice(attentionMask, 1, split, length));
      t.true(firstDiff <= 1e-4 && secondDiff <= 1e-4, `logits differ by ${firstDiff} (no cache), ${secondDiff} (over the cache)`);

      // phi3's longrope: the first step past the switch runs the whole sequence again, as transformers does
      const cache = model.newCache();
      const tokens = inputIds.toArray().slice(0, 5);
      let out = step([tokens], [tokens.map(() => 1)], range(1, 0, tokens.length), null);
      while (tokens.length < greedy.numel) {
        const vocab = out.logits.shape[2];
        tokens.push(argmax(out.logits.values.subarray(out.logits.numel - vocab)));
        const again = cache.ropeSwitch !== null && tokens.length > cache.ropeSwitch && tokens.length - 1 <= cache.ropeSwitch;
        out = again ? step([tokens], [tokens.map(() => 1)], range(1, 0, tokens.length), null) : step([[tokens.at(-1)!]], [tokens.map(() => 1)], [[tokens.length - 1]], out.present);
      }
      t.deepEqual(tokens, greedy.toArray());
    } finally {
      disposeKernels((key) => key === `test-decoder:${name}`);
    }
  });
}
