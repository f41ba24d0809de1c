/**
 * Every command that writes, against every bad input that concerns it: exit 1,
 * a short message naming the file, flag or field and no stack trace, nothing
 * at --out, nothing beside it, and the inputs byte for byte as they were.
 * Each bad input is built by the test from a copy of tiny-code-llama and a
 * PEFT adapter, with one thing broken.
 */
import test from 'ava';
import { createHash } from 'node:crypto';
import { cp, readFile, readdir, rm, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { SafetensorsFile, saveSafetensors, type TensorRecord } from '@lorakit/core/io';
import { DATA, MODEL, PEFT, REPO, fails, lora, scratch } from './testing.ts';

interface Inputs {
  model: string;
  adapter: string;
  data: string;
}

interface BadInput {
  name: string;
  /** What the message must name. */
  names: RegExp;
  break: (inputs: Inputs) => Promise<void>;
  /** The commands it concerns (default: all). */
  only?: Command[];
}

type Command = 'add' | 'train' | 'merge' | 'quantize';

const args: Record<Command, (inputs: Inputs, out: string) => string[]> = {
  add: ({ model }, out) => ['add', model, '--target', 'q_proj,v_proj', '--out', out],
  train: ({ model, adapter, data }, out) => ['train', model, '--adapter', adapter, '--data', data, '--max-steps', '1', '--out', out],
  merge: ({ model, adapter }, out) => ['merge', model, '--adapter', adapter, '--out', out],
  quantize: ({ model }, out) => ['quantize', model, '--out', out],
};

const editJson = async (path: string, edit: (json: Record<string, unknown>) => void) => {
  const json = JSON.parse(await readFile(path, 'utf8'));
  edit(json);
  await writeFile(path, JSON.stringify(json));
};

/** Rewrites the model's safetensors with `edit` applied to its tensors (name -> stored record). */
async function editWeights({ model }: Inputs, edit: (tensors: Map<string, TensorRecord>) => void): Promise<void> {
  const file = await SafetensorsFile.open(join(model, 'model.safetensors'));
  const tensors = new Map(await Promise.all(file.names().map(async (n) => [n, { ...file.entry(n), bytes: await file.readBytes(n) }] as const)));
  await file.close();
  edit(tensors);
  await saveSafetensors(join(model, 'model.safetensors'), tensors);
}

const BAD_INPUTS: BadInput[] = [
  { name: 'no model folder', names: /model.*config\.json/, break: ({ model }) => rm(model, { recursive: true }) },
  { name: 'config.json that is not JSON', names: /config\.json.*JSON/, break: ({ model }) => writeFile(join(model, 'config.json'), '{"model_type": "llama",') },
  { name: 'an unsupported model_type', names: /config\.json.*bert/, break: ({ model }) => editJson(join(model, 'config.json'), (c) => (c.model_type = 'bert')) },
  { name: 'a safetensors file cut short', names: /model\.safetensors/, break: ({ model }) => truncate(join(model, 'model.safetensors'), 1000) },
  { name: 'a safetensors header length beyond the file', names: /model\.safetensors/, break: async ({ model }) => {
    const bytes = await readFile(join(model, 'model.safetensors'));
    bytes.writeBigUInt64LE(BigInt(bytes.length) * 2n, 0);
    await writeFile(join(model, 'model.safetensors'), bytes);
  } },
  { name: 'a weight missing from the checkpoint', names: /model.*missing.*model\.norm\.weight/s, break: (inputs) => editWeights(inputs, (t) => t.delete('model.norm.weight')) },
  { name: 'a mis-shaped weight', names: /model.*model\.layers\.0\.self_attn\.q_proj\.weight: checkpoint \[128,512\]/s, break: (inputs) => editWeights(inputs, (t) => {
    const q = t.get('model.layers.0.self_attn.q_proj.weight')!;
    t.set('model.layers.0.self_attn.q_proj.weight', { ...q, shape: [128, 512] });
  }) },
  { name: 'an adapter made for another model', names: /adapter_model\.safetensors: does not fit this model/, only: ['train', 'merge'], break: ({ adapter }) => cp(`${REPO}packages/adapters/fixtures/regex-targets/adapter`, adapter, { recursive: true }) },
  { name: 'no adapter folder', names: /adapter/, only: ['train', 'merge'], break: ({ adapter }) => rm(adapter, { recursive: true }) },
  { name: 'an adapter_config.json whose r is a string', names: /adapter_config\.json.*\br\b/, only: ['train', 'merge'], break: ({ adapter }) => editJson(join(adapter, 'adapter_config.json'), (c) => (c.r = '8')) },
  { name: 'an adapter whose weights file is missing', names: /adapter_model\.safetensors/, only: ['train', 'merge'], break: ({ adapter }) => rm(join(adapter, 'adapter_model.safetensors')) },
  { name: 'a data line that is not JSON', names: /train\.jsonl:2/, only: ['train'], break: async ({ data }) => {
    const lines = (await readFile(data, 'utf8')).split('\n');
    lines[1] = '{"text": ';
    await writeFile(data, lines.join('\n'));
  } },
];

/** Every file below `dir` with a hash of its bytes. */
async function snapshot(dir: string): Promise<Record<string, string>> {
  const files = await readdir(dir, { recursive: true, withFileTypes: true }).catch(() => []);
  const entries = await Promise.all(files.filter((f) => f.isFile()).map(async (f) => {
    const path = join(f.parentPath, f.name);
    return [path, createHash('sha256').update(await readFile(path)).digest('hex')] as const;
  }));
  return Object.fromEntries(entries.sort());
}

async function freshInputs(): Promise<Inputs> {
  const dir = await scratch();
  const inputs = { model: join(dir, 'model'), adapter: join(dir, 'adapter'), data: join(dir, 'train.jsonl') };
  await cp(MODEL, inputs.model, { recursive: true });
  await cp(`${PEFT}/codellama_qv_r8/adapter`, inputs.adapter, { recursive: true });
  await cp(`${DATA}/train.jsonl`, inputs.data);
  return inputs;
}

for (const bad of BAD_INPUTS) {
  for (const command of bad.only ?? (Object.keys(args) as Command[])) {
    test(`${command} with ${bad.name}: exit 1 naming it, nothing written, inputs unchanged`, async (t) => {
      const inputs = await freshInputs();
      await bad.break(inputs);
      const inputsDir = join(inputs.model, '..');
      const before = await snapshot(inputsDir);
      const outParent = await scratch();
      await fails(t, lora(...args[command](inputs, join(outParent, 'out'))), bad.names);
      t.deepEqual(await readdir(outParent), [], 'nothing at --out or beside it');
      t.deepEqual(await snapshot(inputsDir), before, 'the inputs are as they were');
    });
  }
}
