/** Data files: the three record shapes, and errors that name the file and line. */
import test from 'ava';
import { cp, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AutoTokenizer } from '../tokenizer.ts';
import { TINY_CODE_LLAMA } from '../testing.ts';
import { loadDataset } from './dataset.ts';
import { BatchSchedule, collate, packExamples } from './batches.ts';

const tokenizer = await AutoTokenizer.fromPretrained(TINY_CODE_LLAMA);
const dir = await mkdtemp(join(tmpdir(), 'lorakit-data-'));
let counter = 0;
async function file(lines: string[]): Promise<string> {
  const path = join(dir, `data-${counter++}.jsonl`);
  await writeFile(path, lines.join('\n'));
  return path;
}

test('text records take the loss on every token and end with EOS', async (t) => {
  const [example] = await loadDataset(await file(['{"text": "def f():"}']), tokenizer, { maxLength: 32 });
  t.deepEqual(example.inputIds, [...tokenizer.encode('def f():'), 0]);
  t.deepEqual(example.labels, example.inputIds);
});

test('prompt/completion records take the loss on the completion only', async (t) => {
  const [example] = await loadDataset(await file(['{"prompt": "def f():\\n", "completion": "    return 1\\n"}']), tokenizer, { maxLength: 32 });
  const prompt = tokenizer.encode('def f():\n');
  t.deepEqual(example.labels.slice(0, prompt.length), prompt.map(() => -100));
  t.deepEqual(example.labels.slice(prompt.length), [...tokenizer.encode('    return 1\n'), 0]);
});

test('long examples are cut at maxLength; a prompt with no room left is an error with the line', async (t) => {
  const [example] = await loadDataset(await file(['{"text": "x = 1\\ny = 2\\nz = 3\\n"}']), tokenizer, { maxLength: 4 });
  t.is(example.inputIds.length, 4);
  const path = await file(['{"prompt": "a", "completion": "b"}', '{"prompt": "def a_long_prompt(x, y, z):", "completion": "pass"}']);
  await t.throwsAsync(loadDataset(path, tokenizer, { maxLength: 4 }), { message: new RegExp(`${path}:2: the prompt is \\d+ tokens, which leaves no room`) });
});

test('chat records use the template and learn only from assistant turns', async (t) => {
  const chatDir = join(dir, 'chat-tokenizer');
  await cp(TINY_CODE_LLAMA, chatDir, { recursive: true, filter: (f) => !f.endsWith('.safetensors') });
  const config = JSON.parse(await readFile(join(chatDir, 'tokenizer_config.json'), 'utf8'));
  config.chat_template = "{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}\n{% endfor %}{% if add_generation_prompt %}<assistant>{% endif %}";
  await writeFile(join(chatDir, 'tokenizer_config.json'), JSON.stringify(config));
  const chat = await AutoTokenizer.fromPretrained(chatDir);
  const path = await file(['{"messages": [{"role": "user", "content": "add"}, {"role": "assistant", "content": "a + b"}]}']);
  const [example] = await loadDataset(path, chat, { maxLength: 64, appendEos: false });
  const labelled = example.inputIds.filter((_, i) => example.labels[i] !== -100);
  t.is(chat.decode(labelled), 'a + b\n');
});

for (const [title, lines, detail] of [
  ['invalid JSON', ['{"text": "a"}', '{"text": '], /:2: invalid JSON/],
  ['a line that is not an object', ['["text"]'], /:1: each line must be a JSON object/],
  ['a missing field', ['{"prompt": "a"}'], /:1: "completion" must be a string, got nothing/],
  ['an unknown shape', ['{"input": "a"}'], /:1: a record needs "text", "prompt" and "completion", or "messages"/],
  ['an empty file', ['', '  '], /the file holds no records/],
  ['messages without a chat template', ['{"messages": [{"role": "user", "content": "hi"}]}'], /:1: records with "messages" need a tokenizer with a chat template/],
] as const) {
  test(`bad data is an error naming the file and line: ${title}`, async (t) => {
    const path = await file([...lines]);
    const error = await t.throwsAsync(loadDataset(path, tokenizer, { maxLength: 16 }));
    t.is(error?.name, 'DataError');
    t.true(error!.message.startsWith(path));
    t.regex(error!.message, detail);
  });
}

test('a missing file says so', async (t) => {
  await t.throwsAsync(loadDataset(join(dir, 'nope.jsonl'), tokenizer, { maxLength: 8 }), { message: /nope\.jsonl: no such file/ });
});

test('batches are right-padded, and the order depends only on the seed and the epoch', (t) => {
  const batch = collate([{ inputIds: [5, 6, 7], labels: [-100, 6, 7] }, { inputIds: [8], labels: [8] }], 1);
  t.deepEqual(batch.inputIds.toArray(), [5, 6, 7, 8, 1, 1]);
  t.deepEqual(batch.attentionMask.toArray(), [1, 1, 1, 1, 0, 0]);
  t.deepEqual(batch.labels.toArray(), [-100, 6, 7, 8, -100, -100]);
  t.is(batch.tokens, 2);
  const examples = Array.from({ length: 10 }, (_, i) => ({ inputIds: [i], labels: [i] }));
  const a = new BatchSchedule(examples, 3, 7, 0);
  t.deepEqual(a.order(1), new BatchSchedule(examples, 3, 7, 0).order(1));
  t.notDeepEqual(a.order(0), a.order(1));
  t.deepEqual([...a.order(0)].sort((x, y) => x - y), examples.map((_, i) => i));
});

test('packing concatenates examples into full rows', (t) => {
  const rows = packExamples([{ inputIds: [1, 2, 3], labels: [1, 2, 3] }, { inputIds: [4, 5, 6, 7], labels: [-100, 5, 6, 7] }], 3);
  t.deepEqual(rows.map((r) => r.inputIds), [[1, 2, 3], [4, 5, 6]]);
  t.deepEqual(rows[1].labels, [-100, 5, 6]);
});
