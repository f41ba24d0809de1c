/**
 * Gemma 3's multimodal checkpoints read as their language model: both key conventions, untied heads, the vision
 * tensors left alone, saving under transformers' keys, and what is refused. Logits are compared with the
 * reference transformers' Gemma3ForConditionalGeneration computed (conformance/make_model_fixtures.py, case gemma3).
 */
import test from 'ava';
import { cp, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Tensor, noGrad } from '@lorakit/core';
import { Checkpoint, SafetensorsFile, saveSafetensors, tensorRecord } from '@lorakit/core/io';
import { AutoModelForCausalLM } from '../auto.ts';
import { loadConfig } from '../config.ts';
import { saveModel } from '../save.ts';
import { describeArchitecture } from '../family-summary.ts';
import { FIXTURES, maxMaskedDiff } from '../testing.ts';
import type { Gemma3Config } from './config.ts';

const GEMMA3 = `${FIXTURES}/gemma3`;
const quiet = { onWarning: () => {} };

/** A copy of the gemma3 fixture with its tensors (by stored key) and config.json edited. */
async function edited({ tensors, config }: { tensors?: (t: Map<string, Tensor>) => void; config?: (c: Record<string, any>) => void }): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'lorakit-gemma3-'));
  await cp(GEMMA3, dir, { recursive: true });
  if (tensors) {
    const file = await SafetensorsFile.open(join(GEMMA3, 'model.safetensors'));
    const all = new Map<string, Tensor>();
    for (const name of file.names()) all.set(name, await file.read(name));
    await file.close();
    tensors(all);
    await saveSafetensors(join(dir, 'model.safetensors'), new Map([...all].map(([k, v]) => [k, tensorRecord(v, 'F32')])));
  }
  if (config) {
    const json = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8'));
    config(json);
    await writeFile(join(dir, 'config.json'), JSON.stringify(json));
  }
  return dir;
}

function renamed(tensors: Map<string, Tensor>, rename: (key: string) => string): void {
  for (const [key, tensor] of [...tensors]) {
    tensors.delete(key);
    tensors.set(rename(key), tensor);
  }
}

/** The largest difference from transformers' logits on unpadded positions. */
async function logitsDiff(dir: string): Promise<number> {
  const model = await AutoModelForCausalLM.fromPretrained(dir, quiet);
  const ref = await SafetensorsFile.open(`${GEMMA3}/reference.safetensors`);
  const [inputIds, attentionMask, logits] = await Promise.all(['input_ids', 'attention_mask', 'logits'].map((n) => ref.read(n)));
  await ref.close();
  return maxMaskedDiff(noGrad(() => model.call({ inputIds, attentionMask }).logits), logits, attentionMask);
}

test('gemma3 is the language model under transformers\' in-memory names, with a note on the vision tensors left alone', async (t) => {
  const notes: string[] = [];
  const model = await AutoModelForCausalLM.fromPretrained(GEMMA3, { onWarning: (m) => notes.push(m) });
  const names = [...model.stateDict().keys()];
  t.true(names.includes('model.language_model.layers.0.self_attn.q_proj.weight'));
  t.true(names.includes('lm_head.weight'));
  t.false(names.some((n) => n.includes('vision') || n.includes('multi_modal')));
  t.deepEqual(notes, [`${GEMMA3}: lorakit loads the language model only; the vision tower and multi-modal projector (34 tensors) are left alone`]);
});

test('a gemma3 checkpoint stored under the in-memory names (model.language_model.*) loads the same', async (t) => {
  const dir = await edited({ tensors: (all) => renamed(all, (k) => k.replace(/^language_model\.model\./, 'model.language_model.').replace(/^(vision_tower|multi_modal_projector)\./, 'model.$1.')) });
  t.true(await logitsDiff(dir) <= 1e-4);
});

test('an untied gemma3 reads its head from language_model.lm_head.weight', async (t) => {
  // the stored head is the embedding, so transformers' tied logits are the untied model's too
  const dir = await edited({
    config: (c) => void (c.tie_word_embeddings = false),
    tensors: (all) => void all.set('language_model.lm_head.weight', all.get('language_model.model.embed_tokens.weight')!),
  });
  const model = await AutoModelForCausalLM.fromPretrained(dir, quiet);
  t.deepEqual(model.tiedWeights(), []);
  t.true(await logitsDiff(dir) <= 1e-4);
});

test('gemma3 without its vision tensors loads, with no note', async (t) => {
  const dir = await edited({ tensors: (all) => [...all.keys()].filter((k) => !k.startsWith('language_model.')).forEach((k) => all.delete(k)) });
  const notes: string[] = [];
  await AutoModelForCausalLM.fromPretrained(dir, { onWarning: (m) => notes.push(m) });
  t.deepEqual(notes, []);
  t.true(await logitsDiff(dir) <= 1e-4);
});

test('a gemma3 checkpoint with a stray or doubly stored tensor is refused, naming the stored keys', async (t) => {
  const stray = await edited({ tensors: (all) => void all.set('language_model.model.extra.weight', all.get('language_model.model.norm.weight')!) });
  const error = await t.throwsAsync(AutoModelForCausalLM.fromPretrained(stray, quiet));
  t.is(error?.name, 'CheckpointMismatch');
  t.regex(error!.message, /unexpected \(1\):\n {4}"language_model\.model\.extra\.weight"/);
  const doubled = await edited({ tensors: (all) => void all.set('model.language_model.norm.weight', all.get('language_model.model.norm.weight')!) });
  const twice = await t.throwsAsync(AutoModelForCausalLM.fromPretrained(doubled, quiet));
  t.regex(twice!.message, /stored twice \(1\):\n {4}"language_model\.model\.norm\.weight" and "model\.language_model\.norm\.weight" are both model\.language_model\.norm\.weight/);
  const missing = await edited({ tensors: (all) => void all.delete('language_model.model.norm.weight') });
  t.regex((await t.throwsAsync(AutoModelForCausalLM.fromPretrained(missing, quiet)))!.message, /missing \(1\):\n {4}language_model\.model\.norm\.weight/);
});

test('saving a gemma3 model writes transformers\' keys and a gemma3 config.json with its numbers as written, which loads back the same', async (t) => {
  const model = await AutoModelForCausalLM.fromPretrained(GEMMA3, quiet);
  const dir = await mkdtemp(join(tmpdir(), 'lorakit-gemma3-saved-'));
  await saveModel(model, dir);
  const saved = await Checkpoint.open(dir);
  const input = await Checkpoint.open(GEMMA3);
  t.deepEqual(saved.names().sort(), input.names().filter((n) => n.startsWith('language_model.')).sort());
  await Promise.all([saved.close(), input.close()]);
  const text = await readFile(join(dir, 'config.json'), 'utf8');
  t.regex(text, /"final_logit_softcapping": 3\.0,/); // as the file wrote it: transformers refuses 3 for a float field
  const config = JSON.parse(text);
  t.is(config.model_type, 'gemma3');
  t.is(config.text_config.model_type, 'gemma3_text');
  t.false('vocab_size' in config);
  t.true(await logitsDiff(dir) <= 1e-4);
});

test('gemma3\'s token ids come from the top level, else from text_config, as transformers\' generation takes them', async (t) => {
  const config = (await loadConfig(GEMMA3)) as Gemma3Config;
  t.deepEqual([config.pad_token_id, config.eos_token_id, config.bos_token_id, config.vocab_size], [1, 2, 0, 128]);
  const top = (await loadConfig(await edited({ config: (c) => void (c.eos_token_id = [2, 106]) }))) as Gemma3Config;
  t.deepEqual(top.eos_token_id, [2, 106]);
});

test('gemma3 is described as its language model, without the final soft cap its head does not apply', async (t) => {
  const described = describeArchitecture(await loadConfig(GEMMA3));
  t.is(described[0], 'language model of a multimodal checkpoint (vision tower left alone)');
  t.true(described.includes('tied embeddings'));
  t.true(described.includes('q/k norms per head'));
  t.false(described.some((d) => d.startsWith('logits soft-capped')), described.join('; '));
  t.true(describeArchitecture(await loadConfig(`${FIXTURES}/gemma3_text`)).includes('logits soft-capped at 3'));
});

function refuses(title: string, config: (c: Record<string, any>) => void, code: string, detail: RegExp) {
  test(`gemma3 refuses ${title}: ${code}`, async (t) => {
    const dir = await edited({ config });
    const error = await t.throwsAsync(AutoModelForCausalLM.fromPretrained(dir, quiet));
    t.is(error?.name, code, error?.message);
    t.true(error!.message.startsWith(`${dir}/config.json: `), error!.message);
    t.regex(error!.message, detail);
  });
}

refuses('a text_config of another model type', (c) => void (c.text_config.model_type = 'gemma2'), 'UnsupportedArchitecture', /text_config\.model_type "gemma2" is not supported; a gemma3 model's text_config is gemma3_text/);
refuses('a bad text_config field, naming it under text_config', (c) => void (c.text_config.rms_norm_eps = -1), 'InvalidConfig', /: text_config\.rms_norm_eps must be a positive number/);
refuses('a text_config that is not an object', (c) => void (c.text_config = [1]), 'InvalidConfig', /text_config = \[1\] must be an object/);
refuses('a 4-bit checkpoint', (c) => void (c.quantization_config = { quant_method: 'bitsandbytes', load_in_4bit: true }), 'UnsupportedArchitecture', /a 4-bit gemma3 checkpoint is not supported/);
