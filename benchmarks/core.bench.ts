/**
 * @lorakit/core: fp32 matmul at small-LLM shapes, and one decoder block's
 * forward+backward at SmolLM2-135M shapes, against this machine's peak.
 *
 *   npm run bench:core
 */
import { Tensor, manualSeed } from '@lorakit/core';
import { attentionBias, crossEntropy, linearCrossEntropy, matmul, rotaryTables } from '@lorakit/core/ops';
import { FAMILY_TRAITS, LlamaDecoderLayer, type LlamaLayerConfig } from '@lorakit/models';
import { describeMachine } from './machine.ts';
import { timeAlternating, timeMs } from './stats.ts';

const machine = describeMachine();
console.log(`machine: ${machine.model}, ${machine.cores} cores`);
console.log(`fp32 peak: ${machine.peakGflops.toFixed(1)} GFLOP/s (${machine.peakGflopsOneThread.toFixed(1)} on one thread), measured by a loop of fused multiply-adds\n`);

manualSeed(0);
const matmulRates: number[] = [];
console.log('| matmul [T,K]·[K,N] | ms | GFLOP/s | of peak |');
console.log('|---|---|---|---|');
for (const tokens of [512, 2048]) {
  for (const [k, n] of [[576, 576], [576, 1536], [1536, 576]]) {
    const a = Tensor.randn([tokens, k]);
    const b = Tensor.randn([k, n]);
    const ms = timeMs(() => matmul(a, b), { warmup: 3, reps: 15 });
    const gflops = (2 * tokens * k * n) / ms / 1e6;
    matmulRates.push(gflops);
    console.log(`| [${tokens},${k}]·[${k},${n}] | ${ms.toFixed(2)} | ${gflops.toFixed(1)} | ${((100 * gflops) / machine.peakGflops).toFixed(0)}% |`);
  }
}

const config: LlamaLayerConfig = {
  hidden_size: 576, intermediate_size: 1536, num_attention_heads: 9, num_key_value_heads: 3, head_dim: 64,
  rms_norm_eps: 1e-5, qkv_bias: false, o_bias: false, mlp_bias: false, hidden_act: 'silu',
  ...FAMILY_TRAITS.llama, rope: 'default', rotary_dim: 64, sliding_window: null, attn_softcap: null,
  attention_scale: 1 / Math.sqrt(64), residual_multiplier: 1,
};
const T = 512;
const layer = new LlamaDecoderLayer(config);
const x = Tensor.randn([1, T, config.hidden_size]).requiresGrad_();
const inverseFrequencies = Float64Array.from({ length: 32 }, (_, i) => 10000 ** (-(2 * i) / 64));
const { cos, sin } = rotaryTables(Array.from({ length: T }, (_, i) => i), inverseFrequencies);
const rotary = { cos: new Tensor(cos, [1, 1, T, 64]), sin: new Tensor(sin, [1, 1, T, 64]) };
const bias = attentionBias({ batch: 1, queryLength: T, keyLength: T, causal: true });
const context = { rotary: () => rotary, bias: () => bias, positions: () => Tensor.arange(T, 'int64').reshape([1, T]) };
const gradOut = Tensor.randn([1, T, config.hidden_size]);

const C = config.hidden_size, I = config.intermediate_size, H = config.num_attention_heads, KV = config.num_key_value_heads, D = config.head_dim;
const projections: Array<[number, number]> = [[C, H * D], [C, KV * D], [C, KV * D], [H * D, C], [C, I], [C, I], [I, C]];
const forwardFlops = projections.reduce((f, [i, o]) => f + 2 * T * i * o, 0) + 2 * 2 * H * T * T * D; // + q·kᵀ and p·v
const flops = 3 * forwardFlops; // the backward computes every weight gradient: twice the forward

/** The block's matmuls and nothing else: forward, input gradient and weight gradient of each. */
const operands = projections.map(([i, o]) => ({ x: Tensor.randn([T, i]), w: Tensor.randn([o, i]), dy: Tensor.randn([T, o]) }));
const [qh, kh, probs] = [Tensor.randn([1, H, T, D]), Tensor.randn([1, H, T, D]), Tensor.randn([1, H, T, T])];
function blockMatmulsAlone(): void {
  for (const { x: input, w, dy } of operands) {
    matmul(input, w, { transposeB: true });
    matmul(dy, w);
    matmul(dy, input, { transposeA: true });
  }
  matmul(qh, kh, { transposeB: true }); // scores
  matmul(probs, kh); // probs·v
  matmul(probs, qh, { transposeA: true }); // dv
  matmul(qh, kh, { transposeB: true }); // dprobs
  matmul(probs, kh); // dq
  matmul(probs, qh, { transposeA: true }); // dk
}
function blockForwardBackward(): void {
  layer.zeroGrad();
  x.grad = null;
  layer.call(x, context).backward(gradOut);
}
const [blockMs, matmulsMs] = timeAlternating([blockForwardBackward, blockMatmulsAlone], { warmup: 3, reps: 21 });
const forwardMs = timeMs(() => layer.call(x, context), { warmup: 1, reps: 7 });
console.log(`\ndecoder block (SmolLM2-135M shapes, T=${T}), all weights trainable:`);
console.log(`  forward ${forwardMs.toFixed(1)} ms; forward+backward ${blockMs.toFixed(1)} ms for ${(flops / 1e9).toFixed(2)} GFLOP of matmuls`);
console.log(`  the same matmuls alone: ${matmulsMs.toFixed(1)} ms -> ratio ${(blockMs / matmulsMs).toFixed(2)}x (target <= 1.5x)`);
console.log(`  at peak the matmuls would take ${(flops / machine.peakGflops / 1e6).toFixed(1)} ms; the block runs at ${(flops / blockMs / 1e6).toFixed(1)} GFLOP/s = ${((100 * flops) / blockMs / 1e6 / machine.peakGflops).toFixed(0)}% of peak`);

// The output head and the loss at SmolLM2-135M shapes (4x512 tokens, vocabulary 49152), hidden states trainable and
// the head frozen, as in LoRA: matmul then crossEntropy (the [2048, 49152] logits and their gradient in JavaScript
// memory, the softmax a JavaScript loop) against linearCrossEntropy (fused, chunked, on the native runtime).
const headHidden = Tensor.randn([T * 4, config.hidden_size]).mul(0.5).requiresGrad_();
const headWeight = Tensor.randn([49152, config.hidden_size]).mul(0.05);
const headTargets = new Tensor(Int32Array.from({ length: T * 4 }, (_, i) => (i * 7919) % 49152), [T * 4]);
const heads = [
  () => crossEntropy(matmul(headHidden, headWeight, { transposeB: true }), headTargets).backward(),
  () => linearCrossEntropy(headHidden, headWeight, headTargets).backward(),
];
const [separateMs, fusedMs] = timeAlternating(heads.map((head) => () => { headHidden.grad = null; head(); }), { warmup: 1, reps: 7 });
console.log(`\nhead + cross-entropy forward+backward, ${T * 4} tokens x vocabulary 49152 (SmolLM2-135M shapes):`);
console.log(`  matmul + crossEntropy ${separateMs.toFixed(0)} ms; fused linearCrossEntropy ${fusedMs.toFixed(0)} ms -> ${(separateMs / fusedMs).toFixed(2)}x faster, and no [${T * 4}, 49152] logits in memory`);
