// @lorakit/core/quantization: bitsandbytes' blockwise 4-bit formats (NF4, FP4) and
// double quantization, bit for bit; nn.Linear4bit is the layer that runs them.
export { NF4, FP4, DYNAMIC, codebook, type QuantType } from './codebooks.ts';
export { quantize4bit, dequantize4bit, type Quantized4bit } from './blockwise-4bit.ts';
export { doubleQuantize, expandAbsmax, type DoubleQuantized } from './double-quant.ts';
export { quantizeParallel, type QuantizedWeight } from './parallel.ts';
export { quantizeInt8Rows, dequantizeInt8Rows, int8RowScales, type Int8Rows } from './vectorwise-int8.ts';
