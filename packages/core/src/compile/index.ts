// @lorakit/core/compile: blocks of ops traced once and run as whole onnxruntime sessions.
export { compiledCall, disposeCompiled, setCompileReporter } from './compiled-call.ts';
export { activeTrace, traceOp, traceGuard, traceRandom, untraceable, untraced, type NodeWriter } from './trace.ts';
