/**
 * The fused LoRA kernel against the same layer as separate ops, forward and
 * backward (dx, dA, dB; the base weight frozen), at SmolLM2-135M's projection
 * shapes with 4x512 tokens, r = 8 and 16.
 *
 *   npm run bench:lora
 */
import { Parameter, Tensor, manualSeed } from '@lorakit/core';
import { Linear } from '@lorakit/core/nn';
import { matmul } from '@lorakit/core/ops';
import { baseOf, loraLinear } from '@lorakit/adapters';
import { timeAlternating } from './stats.ts';

manualSeed(0);
const N = 2048;
const shapes: Array<[string, number, number]> = [['q/o_proj', 576, 576], ['k/v_proj', 576, 192], ['gate/up_proj', 576, 1536], ['down_proj', 1536, 576]];

console.log('| projection | r | unfused ms | fused ms | speed-up |');
console.log('|---|---|---|---|---|');
for (const [name, inFeatures, outFeatures] of shapes) {
  for (const r of [8, 16]) {
    const layer = new Linear(inFeatures, outFeatures, { bias: false });
    layer.weight.requiresGrad = false;
    const base = baseOf(layer);
    const x = Tensor.randn([N, inFeatures]).requiresGrad_();
    const a = new Parameter(Tensor.randn([r, inFeatures]).mul(0.05));
    const b = new Parameter(Tensor.randn([outFeatures, r]).mul(0.05));
    const dy = Tensor.randn([N, outFeatures]);
    const reset = () => { x.grad = null; a.grad = null; b.grad = null; };
    const unfused = () => {
      reset();
      matmul(x, layer.weight, { transposeB: true }).add(matmul(matmul(x, a, { transposeB: true }), b, { transposeB: true }).mul(2)).backward(dy);
    };
    const fused = () => {
      reset();
      loraLinear(x, x, base, a, b, 2).backward(dy);
    };
    const [slow, fast] = timeAlternating([unfused, fused], { warmup: 3, reps: 15 });
    console.log(`| ${name} ${inFeatures}→${outFeatures} | ${r} | ${slow.toFixed(2)} | ${fast.toFixed(2)} | ${(slow / fast).toFixed(2)}x |`);
  }
}
