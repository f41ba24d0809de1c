// @lorakit/core/ops (also `F` in @lorakit/core): the differentiable functions, as in
// torch.nn.functional, and what it takes to write a new one: `record` attaches its
// backward to the tape, the shape helpers check and explain its inputs.
export { add, sub, mul, div } from './binary.ts';
export { neg, exp, log, sqrt, rsqrt, pow, tanh, relu, sigmoid, silu, gelu } from './unary.ts';
export { sum, mean, max, sumTo } from './reduce.ts';
export { reshape, expand, permute, transpose, slice, concat, split } from './layout.ts';
export { matmul, type MatmulOptions } from './matmul.ts';
export { softmax, logSoftmax } from './softmax.ts';
export { crossEntropy, type CrossEntropyOptions } from './loss.ts';
export { linearCrossEntropy, type LinearCrossEntropyOptions } from './linear-cross-entropy.ts';
export { embedding } from './embedding.ts';
export { dropout } from './dropout.ts';
export { swiglu } from './swiglu.ts';
export { rmsNorm, layerNorm } from './norm.ts';
export { applyRotary, rotaryTables } from './rope.ts';
export { scaledDotProductAttention, repeatKv, attentionBias, type AttentionOptions, type AttentionBiasOptions } from './attention.ts';
export { rotaryAttention, type RotaryAttentionOptions, type RotaryAttentionResult } from './rotary-attention.ts';
export { record, type GradThunk } from '../autograd.ts';
export * from '../shape.ts';
