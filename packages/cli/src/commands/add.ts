/** lora add <model> --target q_proj,v_proj ... --out DIR: a new PEFT adapter folder for the model. */
import { AutoModelForCausalLM, type CausalLM } from '@lorakit/models';
import { LoraConfig, getPeftModel, layerIndex, type PeftModel } from '@lorakit/adapters';
import { UsageError } from '../errors.ts';
import { closeNames } from '../suggest.ts';
import { targetNames } from './inspect.ts';
import { quote, writeFolderAtomically } from '@lorakit/core/io';
import { checkOutFlag, stopCleanlyOnSignals } from '../output.ts';

export interface LoraFlags {
  target: string;
  r: number;
  alpha: number;
  dropout: number;
  rslora: boolean;
  dora: boolean;
  init?: string;
  /** Layer indices, from main.ts's --layers coercion. */
  layers?: number[];
  exclude?: string;
}

export interface AddArgs extends LoraFlags {
  model: string;
  out: string;
  json: boolean;
}

/** --target q_proj,v_proj | all-linear | a regex (anything with regex characters) */
function parseTargets(value: string): string[] | string {
  if (value === 'all-linear' || /[\\^$*+?()[\]{}|]/.test(value)) return value;
  return value.split(',').map((s) => s.trim()).filter(Boolean);
}

export function loraConfigFromFlags(model: string, flags: LoraFlags): LoraConfig {
  if (flags.init !== undefined && flags.init !== 'gaussian' && flags.init !== 'default') throw new UsageError(`--init takes gaussian or default, got ${quote(flags.init)}`);
  return new LoraConfig({
    r: flags.r, loraAlpha: flags.alpha, loraDropout: flags.dropout, useRslora: flags.rslora, useDora: flags.dora,
    targetModules: parseTargets(flags.target),
    excludeModules: flags.exclude ? parseTargets(flags.exclude) : null,
    layersToTransform: flags.layers ?? null,
    initLoraWeights: flags.init === 'gaussian' ? 'gaussian' : true,
    baseModelNameOrPath: model, taskType: 'CAUSAL_LM',
  });
}

/** --layers may name only layers the model has (PEFT would adapt fewer layers without a word). */
function checkLayers(model: CausalLM, modelDir: string, layers: number[] | undefined): void {
  if (layers === undefined) return;
  const present = new Set(model.namedModules().map(([name]) => layerIndex(name, null)).filter((i) => i !== null));
  const missing = layers.filter((l) => !present.has(l));
  if (missing.length === 0) return;
  const has = present.size === 0 ? 'it has no numbered layers' : `its layers are ${Math.min(...present)} to ${Math.max(...present)}`;
  throw new UsageError(`--layers: ${modelDir} has no layer ${missing.join(', ')}; ${has}`);
}

/** Wrap the model, refusing any --target entry or --layers index that matched nothing, with what exists. */
export function addLora(model: CausalLM, modelDir: string, flags: LoraFlags): PeftModel {
  const available = targetNames(model).map(([n]) => n);
  checkLayers(model, modelDir, flags.layers);
  let peft: PeftModel;
  try {
    peft = getPeftModel(model, loraConfigFromFlags(modelDir, flags));
  } catch (error) {
    if (error instanceof Error && error.name === 'NoMatchingModules') throw new UsageError(`--target ${quote(flags.target)} matched no module of ${modelDir}; available: ${available.join(', ')}`);
    if (error instanceof Error && error.name === 'NoMatchingLayers') throw new UsageError(`--layers: ${error.message}`);
    throw error;
  }
  const unmatched = peft.reports.get('default')!.unmatchedTargets;
  if (unmatched.length > 0) {
    const hints = unmatched.map((name) => {
      const close = closeNames(name, available);
      return close.length ? `${quote(name)} (did you mean ${close.join(' or ')}?)` : quote(name);
    });
    throw new UsageError(`--target: ${hints.join(', ')} matched no module of ${modelDir}; available: ${available.join(', ')}`);
  }
  return peft;
}

export async function add(args: AddArgs): Promise<void> {
  await checkOutFlag(args.out, [args.model]);
  stopCleanlyOnSignals(args.out);
  const model = await AutoModelForCausalLM.fromPretrained(args.model, { onWarning: () => {} });
  const peft = addLora(model, args.model, args);
  await writeFolderAtomically(args.out, (dir) => peft.savePretrained(dir));
  const wrapped = peft.reports.get('default')!.wrapped;
  if (args.json) {
    const trainable = peft.numParameters({ trainableOnly: true });
    process.stdout.write(`${JSON.stringify({ out: args.out, trainable_params: trainable, all_params: peft.numParameters(), wrapped }, null, 2)}\n`);
    return;
  }
  process.stdout.write(`${peft.trainableParametersSummary()}\nwrapped ${wrapped.length} modules: ${wrapped.join(', ')}\nadapter written to ${args.out}\n`);
}
