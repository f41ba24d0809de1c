/** Data files: the three record shapes, errors that name the file and line, and huge records cut before tokenizing. */
import test, { type ExecutionContext } from 'ava';
import { createHash } from 'node:crypto';
import { cp, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AutoTokenizer, type Tokenizer } from '../tokenizer.ts';
import { TINY_CODE_LLAMA } from '../testing.ts';
import { loadDataset } from './dataset.ts';
import { encodeAtMost } from './examples.ts';
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

test('batches padded to a multiple are as wide as the next multiple, the padding masked and ignored', (t) => {
  const batch = collate([{ inputIds: [5, 6, 7], labels: [-100, 6, 7] }, { inputIds: [8], labels: [8] }], 1, 4);
  t.deepEqual(batch.inputIds.shape, [2, 4]);
  t.deepEqual(batch.attentionMask.toArray(), [1, 1, 1, 0, 1, 0, 0, 0]);
  t.deepEqual(batch.labels.toArray(), [-100, 6, 7, -100, 8, -100, -100, -100]);
  t.is(batch.tokens, 2);
  t.deepEqual(collate([{ inputIds: [1, 2, 3, 4], labels: [1, 2, 3, 4] }], 0, 4).inputIds.shape, [1, 4]);
});

test('packing concatenates examples into full rows', (t) => {
  const rows = packExamples([{ inputIds: [1, 2, 3], labels: [1, 2, 3] }, { inputIds: [4, 5, 6, 7], labels: [-100, 5, 6, 7] }], 3);
  t.deepEqual(rows.map((r) => r.inputIds), [[1, 2, 3], [4, 5, 6]]);
  t.deepEqual(rows[1].labels, [-100, 5, 6]);
});

async function bytesFile(...parts: Array<string | number[]>): Promise<string> {
  const path = join(dir, `data-${counter++}.jsonl`);
  await writeFile(path, Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p, 'utf8') : Buffer.from(p)))));
  return path;
}

const sha256 = async (path: string) => createHash('sha256').update(await readFile(path)).digest('hex');

/** The error loadDataset gives, checked to be a DataError naming `path:line` and to leave the file as it was. */
async function dataError(t: ExecutionContext, path: string, line: number, options = { maxLength: 16 }, tok = tokenizer): Promise<string> {
  const before = await sha256(path);
  const error = await t.throwsAsync(loadDataset(path, tok, options));
  t.is(error?.name, 'DataError', error?.message);
  t.true(error!.message.startsWith(`${path}:${line}: `), error!.message);
  t.is(await sha256(path), before, 'the data file is untouched');
  return error!.message;
}

for (const [title, bad] of [
  ['a 0xFF byte', [0xff]],
  ['a lone continuation byte', [0x80]],
  ['an overlong "/" (C0 AF)', [0xc0, 0xaf]],
  ['a UTF-16 surrogate encoded as UTF-8 (ED A0 80)', [0xed, 0xa0, 0x80]],
  ['a code point above U+10FFFF (F4 90 80 80)', [0xf4, 0x90, 0x80, 0x80]],
  ['a sequence cut short (E2 82 then a quote)', [0xe2, 0x82]],
] as const) {
  test(`invalid UTF-8 is an error naming the file and line: ${title}`, async (t) => {
    const path = await bytesFile('{"text": "ok"}\n\n{"text": "a', [...bad], 'b"}\n{"text": "c"}\n');
    t.regex(await dataError(t, path, 3), /: not valid UTF-8 text/);
  });
}

test('invalid UTF-8 in a final line without a newline, after CRLF lines, is named too', async (t) => {
  const path = await bytesFile('{"text": "é"}\r\n{"text": "ü"}\r\n{"text": "', [0xe9], '"}');
  await dataError(t, path, 3);
});

test('valid multi-byte UTF-8 reads as before, a byte-order mark still reaching the JSON parser', async (t) => {
  const [example] = await loadDataset(await bytesFile('{"text": "naïve → ok 😀"}\n'), tokenizer, { maxLength: 64 });
  t.deepEqual(example.inputIds, [...tokenizer.encode('naïve → ok 😀'), 0]);
  t.regex(await dataError(t, await bytesFile([0xef, 0xbb, 0xbf], '{"text": "a"}\n'), 1), /invalid JSON/);
});

let chatTokenizer: Promise<Tokenizer> | undefined;
/** The tiny model's tokenizer with a plain chat template added. */
function withChatTemplate(): Promise<Tokenizer> {
  chatTokenizer ??= (async () => {
    const chatDir = join(dir, 'chat-template-tokenizer');
    await cp(TINY_CODE_LLAMA, chatDir, { recursive: true, filter: (f) => !f.endsWith('.safetensors') });
    const config = JSON.parse(await readFile(join(chatDir, 'tokenizer_config.json'), 'utf8'));
    config.chat_template = "{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}\n{% endfor %}{% if add_generation_prompt %}<assistant>{% endif %}";
    await writeFile(join(chatDir, 'tokenizer_config.json'), JSON.stringify(config));
    return AutoTokenizer.fromPretrained(chatDir);
  })();
  return chatTokenizer;
}

for (const role of ['bot', 'Assistant', 'developer', 'function', '', 'user\u001b[31m']) {
  test(`a chat role other than system, user, assistant or tool is an error naming the line and the role: ${JSON.stringify(role)}`, async (t) => {
    const path = await bytesFile(
      '{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}\n',
      `{"messages": [{"role": "system", "content": "be brief"}, ${JSON.stringify({ role, content: 'x' })}]}\n`,
    );
    const message = await dataError(t, path, 2, { maxLength: 64 }, await withChatTemplate());
    t.true(message.endsWith(`message 2 has role ${JSON.stringify(role)}; the roles are system, user, assistant, tool`), message);
  });
}

test('system, user, assistant and tool are all accepted roles', async (t) => {
  const chat = await withChatTemplate();
  const path = await bytesFile('{"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}, {"role": "tool", "content": "t"}, {"role": "assistant", "content": "a"}]}\n');
  const [example] = await loadDataset(path, chat, { maxLength: 64, appendEos: false });
  t.is(chat.decode(example.inputIds.filter((_, i) => example.labels[i] !== -100)), 'a\n');
});

/** About `chars` characters of varied code-like text, the same on every run. */
function longText(chars: number): string {
  const words = ['def', 'return', 'self', 'value', 'x', '=', '+', '(', ')', ':', 'if', 'else', 'for', 'in', 'range', '42', '"str"', 'é', '→', '😀', '  ', '\n', '\n    '];
  let seed = 12345;
  const parts: string[] = [];
  for (let n = 0; n < chars; ) {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    const word = words[seed % words.length];
    parts.push(word, seed % 3 === 0 ? '' : ' ');
    n += word.length + 1;
  }
  return parts.join('');
}

test('a multi-megabyte text record is cut before it is tokenized, keeping the ids a whole encode keeps', async (t) => {
  const text = longText(3_000_000);
  const path = await bytesFile(JSON.stringify({ text }), '\n', JSON.stringify({ text: 'short' }), '\n');
  let started = performance.now();
  const whole = tokenizer.encode(text).slice(0, 512);
  const wholeSeconds = (performance.now() - started) / 1000;
  started = performance.now();
  const [long, short] = await loadDataset(path, tokenizer, { maxLength: 512 });
  const cutSeconds = (performance.now() - started) / 1000;
  t.deepEqual(long.inputIds, whole);
  t.deepEqual(long.labels, whole);
  t.deepEqual(short.inputIds, [...tokenizer.encode('short'), 0]);
  t.log(`3 MB record: loadDataset ${cutSeconds.toFixed(2)} s, one whole encode ${wholeSeconds.toFixed(2)} s`);
  t.true(cutSeconds < wholeSeconds / 4, `cut ${cutSeconds.toFixed(2)} s, whole encode ${wholeSeconds.toFixed(2)} s`);
});

test('a huge completion is cut to what maxLength leaves, a huge prompt is an error, a huge chat keeps its labels', async (t) => {
  const text = longText(400_000);
  const prompt = 'def f():\n';
  const [pc] = await loadDataset(await bytesFile(JSON.stringify({ prompt, completion: text })), tokenizer, { maxLength: 300 });
  const promptIds = tokenizer.encode(prompt);
  t.deepEqual(pc.inputIds, [...promptIds, ...tokenizer.encode(text)].slice(0, 300));
  t.deepEqual(pc.labels, [...promptIds.map(() => -100), ...tokenizer.encode(text)].slice(0, 300));
  const message = await dataError(t, await bytesFile(JSON.stringify({ prompt: text, completion: 'x' })), 1, { maxLength: 300 });
  t.regex(message, /the prompt is over 300 tokens, which leaves no room for the completion within maxLength 300$/);

  const chat = await withChatTemplate();
  const messages = [{ role: 'user', content: 'write it' }, { role: 'assistant', content: text }, { role: 'user', content: text }, { role: 'assistant', content: 'done' }];
  const [example] = await loadDataset(await bytesFile(JSON.stringify({ messages })), chat, { maxLength: 300, appendEos: false });
  const whole = chat.encode(chat.applyChatTemplate(messages)).slice(0, 300);
  const start = chat.encode(chat.applyChatTemplate(messages.slice(0, 1), { addGenerationPrompt: true })).length;
  t.deepEqual(example.inputIds, whole);
  t.deepEqual(example.labels, whole.map((id, i) => (i < start ? -100 : id)));
});

test('when moving the cut keeps changing the kept ids, the text is tokenized whole', (t) => {
  // A tokenizer whose first id depends on the end of the text: no prefix can stand for the whole.
  const calls: number[] = [];
  const nonLocal = { encode: (s: string) => (calls.push(s.length), [s.length, ...Array.from(s.slice(1), (c) => c.charCodeAt(0))]) };
  const text = 'ab'.repeat(300_000);
  const encoded = encodeAtMost(nonLocal, text, 8);
  t.deepEqual(encoded, { ids: nonLocal.encode(text), complete: true });
  t.is(calls.at(-2), text.length, 'the last call was the whole text');
  t.true(calls.slice(0, -2).every((n, i, all) => n < text.length && (i === 0 || n === 2 * all[i - 1])), `prefixes ${calls.join(', ')}`);
  // A local one (one id per character) stops at the first two prefixes.
  const local = { encode: (s: string) => Array.from(s, (c) => c.charCodeAt(0)) };
  const cut = encodeAtMost(local, text, 8);
  t.false(cut.complete);
  t.deepEqual(cut.ids.slice(0, 8), local.encode(text).slice(0, 8));
  t.is(cut.ids.length, 131_072);
});

test('a cut never splits a surrogate pair', (t) => {
  const local = { encode: (s: string) => Array.from(s, (c) => c.codePointAt(0)!) };
  const text = 'x' + '😀'.repeat(100_000);
  const cut = encodeAtMost(local, text, 8);
  t.false(cut.complete);
  t.true(cut.ids.every((id) => id === 0x78 || id === 0x1f600));
});
