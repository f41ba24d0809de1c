// @lorakit/core/nn (also `nn` in @lorakit/core): the layers, as in torch.nn.
export { Linear } from './linear.ts';
export { Conv1D } from './conv1d.ts';
export { Embedding } from './embedding.ts';
export { RMSNorm, LayerNorm } from './norm.ts';
export { SiLU, ReLU, GELU, Dropout, Identity } from './activation.ts';
export { Sequential } from './sequential.ts';
export { ModuleDict } from './module-dict.ts';
export { ParameterDict } from './parameter-dict.ts';
export { Linear4bit, type Quantization4bit } from './linear-4bit.ts';
export { Linear8bit, LLM_INT8_THRESHOLD } from './linear-8bit.ts';
