/**
 * @lorakit/core: tensors with autograd and PyTorch's Module tree.
 *
 *   import { Tensor, Module, nn, optim, init, F, noGrad } from '@lorakit/core';
 *
 * The plumbing has subpaths of its own: `@lorakit/core/io` (safetensors,
 * checkpoint folders, atomic writes), `/native` (onnxruntime kernels, worker
 * threads), `/quantization` (bitsandbytes' 4-bit formats), `/wasm` (the merge
 * kernel), `/testing` (gradcheck and tolerances); `/nn`, `/optim` and `/ops`
 * are the namespaces below as modules.
 */
export { Tensor, type DType, type FloatDType, type FloatArray, type Storage } from './tensor.ts';
export { Parameter, Buffer } from './parameter.ts';
export { Module, type ForwardHook, type ForwardPreHook, type HookHandle } from './module.ts';
export type { LoadOptions, LoadResult } from './state-dict.ts';
export { noGrad, enableGrad, isGradEnabled } from './autograd.ts';
export { checkpoint } from './checkpoint.ts';
export { compiledCall, disposeCompiled, setCompileReporter } from './compile/compiled-call.ts';
export { Generator, manualSeed, defaultGenerator } from './random.ts';
export { findNonFiniteTensors, findUnregisteredTensors, type NonFiniteTensor, type UnregisteredTensor } from './debug.ts';
export * as nn from './nn/index.ts';
export * as optim from './optim/index.ts';
export * as init from './init.ts';
export * as F from './ops/index.ts';
