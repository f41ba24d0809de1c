// @lorakit/core/native: the kernels behind the ops. onnxruntime sessions built from
// ONNX graphs written in code, and worker threads for work split across cores.
export { nativeKernel, nativeThreads, NativeKernel, disposeKernels, setExecutionProviders, getExecutionProviders, availableExecutionProviders, type ModelSource } from './session.ts';
export { GraphBuilder, modelBytes, elemTypeNumber, ONNX_OPSET, type ElemType, type GraphConstant, type GraphNode, type GraphValue, type DeclaredShape } from './graph.ts';
export { attentionBiasNodes } from '../ops/attention.ts';
export { choosesBySize, untraceable } from '../compile/trace.ts';
export { traceRun, writeGeneralized, type TracedRun, type WholeGraphRun, type Sizes } from '../compile/whole-graph.ts';
export { bnb4Node, dequantizeNodes } from '../nn/linear-4bit.ts';
export { int8MatMulNodes, int8InputGradNodes } from '../nn/linear-8bit.ts';
export { typeScriptWorker } from '../worker-thread.ts';
