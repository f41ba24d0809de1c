/**
 * The LoRA layers a model can hold, as PEFT's LoraLayer subclasses: a
 * LoraLinear (Linear, Conv1D, 4-bit) or a LoraEmbedding. What PeftModel does
 * to every adapted layer (activate, disable, merge, unmerge, unload, train)
 * it does through this union.
 */
import type { Module } from '@lorakit/core';
import { LoraLinear } from './lora-linear.ts';
import { LoraEmbedding } from './lora-embedding.ts';

export type LoraLayer = LoraLinear | LoraEmbedding;

export function isLoraLayer(m: Module): m is LoraLayer {
  return m instanceof LoraLinear || m instanceof LoraEmbedding;
}
