/**
 * LoraConfig: PEFT's LoraConfig with camelCase names, one to one with the
 * fields of adapter_config.json (peft-format.ts does the mapping).
 *
 *   new LoraConfig({ r: 8, loraAlpha: 16, targetModules: ['q_proj', 'v_proj'] })
 *
 * Defaults are PEFT's: r 8, lora_alpha 8, lora_dropout 0, bias "none",
 * init_lora_weights true.
 */
import { quote } from '@lorakit/core/io';

export type TargetModules = string[] | string | null;
export type LoraBias = 'none' | 'all' | 'lora_only';
export type InitLoraWeights = true | false | 'gaussian';

export interface LoraConfigFields {
  r: number;
  loraAlpha: number;
  /** A list (exact names or dotted suffixes), a regex matching whole module names, or "all-linear". */
  targetModules: TargetModules;
  excludeModules: TargetModules;
  layersToTransform: number | number[] | null;
  layersPattern: string | string[] | null;
  rankPattern: Record<string, number>;
  alphaPattern: Record<string, number>;
  loraDropout: number;
  /** Set for layers that store the weight [in, out], like GPT-2's Conv1D. */
  fanInFanOut: boolean;
  bias: LoraBias;
  useRslora: boolean;
  useDora: boolean;
  initLoraWeights: InitLoraWeights;
  modulesToSave: string[] | null;
  baseModelNameOrPath: string | null;
  revision: string | null;
  taskType: string | null;
  inferenceMode: boolean;
}

export const LORA_DEFAULTS: LoraConfigFields = {
  r: 8, loraAlpha: 8, targetModules: null, excludeModules: null, layersToTransform: null, layersPattern: null,
  rankPattern: {}, alphaPattern: {}, loraDropout: 0, fanInFanOut: false, bias: 'none', useRslora: false, useDora: false,
  initLoraWeights: true, modulesToSave: null, baseModelNameOrPath: null, revision: null, taskType: null, inferenceMode: false,
};

export class LoraConfig implements LoraConfigFields {
  r!: number;
  loraAlpha!: number;
  targetModules!: TargetModules;
  excludeModules!: TargetModules;
  layersToTransform!: number | number[] | null;
  layersPattern!: string | string[] | null;
  rankPattern!: Record<string, number>;
  alphaPattern!: Record<string, number>;
  loraDropout!: number;
  fanInFanOut!: boolean;
  bias!: LoraBias;
  useRslora!: boolean;
  useDora!: boolean;
  initLoraWeights!: InitLoraWeights;
  modulesToSave!: string[] | null;
  baseModelNameOrPath!: string | null;
  revision!: string | null;
  taskType!: string | null;
  inferenceMode!: boolean;

  constructor(fields: Partial<LoraConfigFields> = {}) {
    Object.assign(this, LORA_DEFAULTS, fields);
    validateConfig(this);
  }

  /** The rank and alpha of one module: the first matching rank/alpha pattern, else r and loraAlpha. */
  rankAndAlpha(moduleName: string): { r: number; alpha: number } {
    const rKey = patternKey(Object.keys(this.rankPattern), moduleName);
    const alphaKey = patternKey(Object.keys(this.alphaPattern), moduleName);
    return { r: rKey === null ? this.r : this.rankPattern[rKey], alpha: alphaKey === null ? this.loraAlpha : this.alphaPattern[alphaKey] };
  }

  scaling(moduleName: string): number {
    const { r, alpha } = this.rankAndAlpha(moduleName);
    return this.useRslora ? alpha / Math.sqrt(r) : alpha / r;
  }

  with(fields: Partial<LoraConfigFields>): LoraConfig {
    return new LoraConfig({ ...this, ...fields });
  }
}

/** PEFT's get_pattern_key: the first key (in order) that matches the end of the name as a regex. */
export function patternKey(keys: string[], moduleName: string): string | null {
  return keys.find((key) => new RegExp(`^(?:.*\\.)?(?:${key})$`).test(moduleName)) ?? null;
}

const isPositiveInteger = (v: unknown) => typeof v === 'number' && Number.isInteger(v) && v > 0;

export function validateConfig(c: LoraConfigFields): void {
  const fail = (field: string, detail: string) => { throw new Error(`LoraConfig.${field}: ${detail}`); };
  if (!isPositiveInteger(c.r)) fail('r', `must be a positive integer, got ${quote(c.r)}`);
  if (typeof c.loraAlpha !== 'number' || !Number.isFinite(c.loraAlpha)) fail('loraAlpha', `must be a finite number, got ${quote(c.loraAlpha)}`);
  if (!(c.loraDropout >= 0 && c.loraDropout < 1)) fail('loraDropout', `must be in [0, 1), got ${quote(c.loraDropout)}`);
  if (!['none', 'all', 'lora_only'].includes(c.bias)) fail('bias', `must be "none", "all" or "lora_only", got ${quote(c.bias)}`);
  if (![true, false, 'gaussian'].includes(c.initLoraWeights)) fail('initLoraWeights', `must be true, false or "gaussian", got ${quote(c.initLoraWeights)}`);
  for (const [k, v] of Object.entries(c.rankPattern)) if (!isPositiveInteger(v)) fail('rankPattern', `${quote(k)}: ${quote(v)} is not a positive integer`);
  for (const [k, v] of Object.entries(c.alphaPattern)) if (typeof v !== 'number' || !Number.isFinite(v)) fail('alphaPattern', `${quote(k)}: ${quote(v)} is not a finite number`);
  const layers = c.layersToTransform;
  if (layers !== null && !(typeof layers === 'number' ? Number.isInteger(layers) && layers >= 0 : layers.every((l) => Number.isInteger(l) && l >= 0))) {
    fail('layersToTransform', `must hold non-negative integers, got ${quote(layers)}`);
  }
  const patterns = [
    ...Object.keys(c.rankPattern).map((p) => ['rankPattern', p]), ...Object.keys(c.alphaPattern).map((p) => ['alphaPattern', p]),
    ...(typeof c.targetModules === 'string' ? [['targetModules', c.targetModules]] : []),
  ];
  for (const [field, pattern] of patterns) {
    try {
      new RegExp(pattern);
    } catch {
      fail(field, `${quote(pattern)} is not a valid regular expression`);
    }
  }
}
