/** lora add <model> --target q_proj,v_proj ... --out DIR: a new PEFT adapter folder for the model. */
import { AutoModelForCausalLM, type CausalLM } from '@lorakit/models';
import { LoraConfig, getPeftModel, type PeftModel } from '@lorakit/adapters';
import { UsageError, layerList } from '../errors.ts';
import { closeNames } from '../suggest.ts';
import { targetNames } from './inspect.ts';
import { writeFolderAtomically } from '@lorakit/core/io';
import { checkOutFlag, stopCleanlyOnSignals } from '../output.ts';

export interface LoraFlags {
  target: string;
  r: number;
  alpha: number;
  dropout: number;
  rslora: boolean;
  dora: boolean;
  init?: string;
  layers?: string;
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
  if (flags.init !== undefined && flags.init !== 'gaussian' && flags.init !== 'default') throw new UsageError(`--init takes gaussian or default, got ${JSON.stringify(flags.init)}`);
  return new LoraConfig({
    r: flags.r, loraAlpha: flags.alpha, loraDropout: flags.dropout, useRslora: flags.rslora, useDora: flags.dora,
    targetModules: parseTargets(flags.target),
    excludeModules: flags.exclude ? parseTargets(flags.exclude) : null,
    layersToTransform: flags.layers ? layerList(flags.layers) : null,
    initLoraWeights: flags.init === 'gaussian' ? 'gaussian' : true,
    baseModelNameOrPath: model, taskType: 'CAUSAL_LM',
  });
}

/** Wrap the model, refusing any --target entry that matched nothing, with the names that exist. */
export function addLora(model: CausalLM, modelDir: string, flags: LoraFlags): PeftModel {
  const available = targetNames(model).map(([n]) => n);
  let peft: PeftModel;
  try {
    peft = getPeftModel(model, loraConfigFromFlags(modelDir, flags));
  } catch (error) {
    if (error instanceof Error && error.name === 'NoMatchingModules') throw new UsageError(`--target ${flags.target} matched no module of ${modelDir}; available: ${available.join(', ')}`);
    throw error;
  }
  const unmatched = peft.reports.get('default')!.unmatchedTargets;
  if (unmatched.length > 0) {
    const hints = unmatched.map((name) => {
      const close = closeNames(name, available);
      return close.length ? `${name} (did you mean ${close.join(' or ')}?)` : name;
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
