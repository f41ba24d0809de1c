export type { LlamaLayerConfig } from './llama/config.ts';
export { LlamaAttention, type LayerCache, type RotaryTables } from './llama/attention.ts';
export { LlamaMLP } from './llama/mlp.ts';
export { LlamaDecoderLayer } from './llama/decoder-layer.ts';
