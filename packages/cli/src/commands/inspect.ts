/** lora inspect <model> [--adapter DIR] [--depth N] [--json]: the module tree, the target names, an adapter's summary. */
import { findNonFiniteTensors, type Module } from '@lorakit/core';
import { Embedding, Linear, Linear4bit, Linear8bit, Conv1D } from '@lorakit/core/nn';
import { AutoModelForCausalLM, describeArchitecture, type CausalLM } from '@lorakit/models';
import { PeftModel, checkAdapterCompatibility } from '@lorakit/adapters';

export interface InspectArgs {
  model: string;
  adapter?: string;
  depth: number;
  json: boolean;
}

const isLinear = (m: Module) => m instanceof Linear || m instanceof Conv1D || m instanceof Linear4bit || m instanceof Linear8bit;

/** Linear names that can be targets, with how many modules each matches. */
export function targetNames(model: CausalLM): Array<[string, number]> {
  const counts = new Map<string, number>();
  const head = model.outputEmbeddingsName();
  for (const [name, m] of model.namedModules()) {
    if (!isLinear(m) || name === head) continue;
    const short = name.slice(name.lastIndexOf('.') + 1);
    counts.set(short, (counts.get(short) ?? 0) + 1);
  }
  return [...counts];
}

/** What lorakit does with this model: the same for every family, on its own layer names. */
export function supportedFeatures(model: CausalLM, targets: Array<[string, number]>): string[] {
  const embeddings = model.namedModules().filter(([, m]) => m instanceof Embedding).map(([name]) => name.slice(name.lastIndexOf('.') + 1));
  return [
    `LoRA, rsLoRA and DoRA on ${targets.map(([n]) => n).join(', ')}`,
    `LoRA on ${embeddings.join(', ')} (not DoRA)`,
    'QLoRA on a 4-bit base (NF4, FP4)',
    'merging into the weights',
    'generation with a key/value cache',
  ];
}

function tree(model: Module, depth: number): string[] {
  return model.namedModules().filter(([name]) => name !== '' && name.split('.').length <= depth).map(([name, m]) => {
    const own = m.ownTensors().map(([n, t]) => `${n} [${t.shape.join(', ')}]${'requiresGrad' in t && t.requiresGrad ? ' trainable' : ''}`);
    const count = m.numParameters();
    return `${'  '.repeat(name.split('.').length - 1)}${name}: ${m.constructor.name}${own.length ? `  ${own.join(', ')}` : ''}  (${count.toLocaleString('en-US')} params)`;
  });
}

export async function inspect(args: InspectArgs): Promise<void> {
  const model = await AutoModelForCausalLM.fromPretrained(args.model, { onWarning: () => {} });
  const targets = targetNames(model);
  const root: Module = args.adapter ? await PeftModel.fromPretrained(model, args.adapter) : model;
  const summary = {
    model: args.model,
    model_type: model.config.model_type,
    parameters: root.numParameters(),
    non_finite_tensors: findNonFiniteTensors(model),
    trainable: root.numParameters({ trainableOnly: true }),
    architecture: describeArchitecture(model.config),
    supports: supportedFeatures(model, targets),
    targets: Object.fromEntries(targets),
    adapter: args.adapter && root instanceof PeftModel ? {
      dir: args.adapter,
      r: root.peftConfig.get('default')!.r,
      lora_alpha: root.peftConfig.get('default')!.loraAlpha,
      target_modules: root.peftConfig.get('default')!.targetModules,
      wrapped: root.reports.get('default')!.wrapped.length,
      adapter_parameters: root.adaptedLayers().reduce((n, [, l]) => n + l.adapterParameters('default').reduce((k, p) => k + p.numel, 0), 0),
      vllm: await checkAdapterCompatibility(args.adapter, 'vllm'),
      llama_cpp: await checkAdapterCompatibility(args.adapter, 'llama.cpp'),
    } : undefined,
  };
  if (args.json) {
    process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
    return;
  }
  const lines = [
    `${args.model}: ${model.config.model_type}, ${summary.parameters.toLocaleString('en-US')} parameters`,
    ...(summary.architecture.length ? [`  ${summary.architecture.join('; ')}`] : []),
    `  lorakit supports on it: ${summary.supports.join('; ')}`,
    '',
    ...tree(root, args.depth),
    '',
    `linear layers that can be targets: ${targets.map(([n, c]) => `${n} (${c})`).join(', ')}`,
  ];
  if (summary.non_finite_tensors.length > 0) {
    lines.push('', `tensors holding NaN or Infinity (values): ${summary.non_finite_tensors.map(({ name, count }) => `${name} (${count})`).join(', ')}`);
  }
  if (summary.adapter) {
    const a = summary.adapter;
    lines.push('', `adapter ${a.dir}: r ${a.r}, lora_alpha ${a.lora_alpha}, ${a.wrapped} layers wrapped, ${a.adapter_parameters.toLocaleString('en-US')} adapter parameters`);
    for (const report of [a.vllm, a.llama_cpp]) {
      lines.push(`  ${report.target}: ${report.compatible ? 'compatible' : report.problems.map((p) => `${p.message}${p.fix ? ` (${p.fix})` : ''}`).join('; ')}`);
    }
  }
  process.stdout.write(`${lines.join('\n')}\n`);
}
