/**
 * llama.cpp splits text as the Hugging Face tokenizer does for each tokenizer form lorakit writes in a GGUF file:
 * byte-level BPE tokenizers made here, one per pre-tokenizer, and SentencePiece ones in each form tokenizer.json gives
 * them, with a merge for every pair of neighbouring characters of the test texts (so where a pre-tokenizer cuts
 * shows in the tokens), on tiny-code-llama's weights; where llama.cpp differs in some texts, the difference said.
 */
import test from 'ava';
import { cp, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { getLlama, LlamaLogLevel } from 'node-llama-cpp';
import { AutoModelForCausalLM } from '../auto.ts';
import { AutoTokenizer } from '../tokenizer.ts';
import { TINY_CODE_LLAMA } from '../testing.ts';
import { writeGgufModel } from './gguf-model.ts';

const TEXTS = ["x = 12345 + 6.78\n\n\n  it's 'S they'LL", 'def f(a):\r\n    return a**2  # ½ of 1000000\t\tok', 'Ünïcödé  wörds, 日本語 123abc abc123 !!??\n'];
const LLAMA3 = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const QWEN2 = LLAMA3.replace('\\p{N}{1,3}', '\\p{N}');
const byteLevel = (useRegex: boolean) => ({ type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: useRegex });
const split = (regex: string) => ({ type: 'Split', pattern: { Regex: regex }, behavior: 'Isolated', invert: false });
const PRE_TOKENIZERS: Record<string, object> = {
  'gpt-2': byteLevel(true),
  'llama-bpe (Llama 3)': { type: 'Sequence', pretokenizers: [split(LLAMA3), byteLevel(false)] },
  qwen2: { type: 'Sequence', pretokenizers: [split(QWEN2), byteLevel(false)] },
};

/** GPT-2's byte -> character table: printable bytes as themselves, the others from U+0100 on. */
function byteCharacters(): string[] {
  const printable = (b: number) => (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  let next = 0;
  return Array.from({ length: 256 }, (_, b) => String.fromCodePoint(printable(b) ? b : 0x100 + next++));
}

function tokenizerJson(pre: object, normalizer: object | null = null): object {
  const chars = byteCharacters();
  const vocab: Record<string, number> = Object.fromEntries(chars.map((c, i) => [c, i]));
  const merges: string[] = [];
  for (const text of TEXTS) {
    const encoded = [...new TextEncoder().encode(text)].map((b) => chars[b]);
    for (let i = 0; i + 1 < encoded.length; i++) {
      const pair = `${encoded[i]}${encoded[i + 1]}`;
      if (pair in vocab) continue;
      vocab[pair] = Object.keys(vocab).length;
      merges.push(`${encoded[i]} ${encoded[i + 1]}`);
    }
  }
  return { version: '1.0', model: { type: 'BPE', vocab, merges, dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: false, byte_fallback: false }, normalizer, pre_tokenizer: pre, post_processor: null, decoder: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true }, added_tokens: [] };
}

const llama = getLlama({ gpu: false, build: 'never', logLevel: LlamaLogLevel.error });

for (const [name, pre] of Object.entries(PRE_TOKENIZERS)) {
  test(`llama.cpp tokenizes as Hugging Face with the ${name} pre-tokenizer`, async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'lorakit-gguf-tokenizer-'));
    await cp(TINY_CODE_LLAMA, dir, { recursive: true });
    await writeFile(join(dir, 'tokenizer.json'), JSON.stringify(tokenizerJson(pre)));
    await writeFile(join(dir, 'tokenizer_config.json'), JSON.stringify({ tokenizer_class: 'PreTrainedTokenizerFast', add_bos_token: false }));
    await writeGgufModel(await AutoModelForCausalLM.fromPretrained(dir), join(dir, 'model.gguf'), { source: dir });
    const model = await (await llama).loadModel({ modelPath: join(dir, 'model.gguf') });
    const tokenizer = await AutoTokenizer.fromPretrained(dir);
    for (const text of TEXTS) t.deepEqual(Array.from(model.tokenize(text)), tokenizer.encode(text), JSON.stringify(text));
    await model.dispose();
  });
}

test('a byte-level tokenizer\'s NFC normalizer (Qwen2\'s) is said, since llama.cpp does not normalize; text in NFC tokenizes the same, and another normalizer is refused', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'lorakit-gguf-tokenizer-'));
  await cp(TINY_CODE_LLAMA, dir, { recursive: true });
  await writeFile(join(dir, 'tokenizer.json'), JSON.stringify(tokenizerJson(PRE_TOKENIZERS.qwen2, { type: 'NFC' })));
  await writeFile(join(dir, 'tokenizer_config.json'), JSON.stringify({ tokenizer_class: 'PreTrainedTokenizerFast', add_bos_token: false }));
  const warnings: string[] = [];
  await writeGgufModel(await AutoModelForCausalLM.fromPretrained(dir), join(dir, 'model.gguf'), { source: dir, onWarning: (m) => warnings.push(m) });
  t.deepEqual(warnings, [`${join(dir, 'tokenizer.json')}: llama.cpp does not put text in Unicode NFC first, as this tokenizer's normalizer does: text not already in NFC (decomposed accents, say) tokenizes differently`]);
  const model = await (await llama).loadModel({ modelPath: join(dir, 'model.gguf') });
  const tokenizer = await AutoTokenizer.fromPretrained(dir);
  for (const text of TEXTS) t.deepEqual(Array.from(model.tokenize(text)), tokenizer.encode(text), JSON.stringify(text));
  await model.dispose();
  await writeFile(join(dir, 'tokenizer.json'), JSON.stringify(tokenizerJson(PRE_TOKENIZERS.qwen2, { type: 'Lowercase' })));
  await t.throwsAsync(writeGgufModel(await AutoModelForCausalLM.fromPretrained(dir), join(dir, 'lowercase.gguf'), { source: dir }), { message: /tokenizer\.json: a \{"type":"Lowercase"\} normalizer cannot be written as GGUF/ });
});

test("SmolLM's pre-tokenizer (Digits, then GPT-2's) is written as llama.cpp's smollm, with the one difference said", async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'lorakit-gguf-tokenizer-'));
  await cp(TINY_CODE_LLAMA, dir, { recursive: true });
  await writeFile(join(dir, 'tokenizer.json'), JSON.stringify(tokenizerJson({ type: 'Sequence', pretokenizers: [{ type: 'Digits', individual_digits: true }, byteLevel(true)] })));
  await writeFile(join(dir, 'tokenizer_config.json'), JSON.stringify({ tokenizer_class: 'PreTrainedTokenizerFast', add_bos_token: false }));
  const warnings: string[] = [];
  await writeGgufModel(await AutoModelForCausalLM.fromPretrained(dir), join(dir, 'model.gguf'), { source: dir, onWarning: (m) => warnings.push(m) });
  t.is(warnings.length, 1);
  t.regex(warnings[0], /tokenizer\.json: llama\.cpp's smollm pre-tokenizer sets apart every Unicode number character \(½/);
  const model = await (await llama).loadModel({ modelPath: join(dir, 'model.gguf') });
  const tokenizer = await AutoTokenizer.fromPretrained(dir);
  const [withoutHalf, withHalf] = [TEXTS[1].replace('½', 'half'), TEXTS[1]];
  for (const text of [TEXTS[0], withoutHalf, TEXTS[2]]) t.deepEqual(Array.from(model.tokenize(text)), tokenizer.encode(text), JSON.stringify(text));
  t.notDeepEqual(Array.from(model.tokenize(withHalf)), tokenizer.encode(withHalf), 'the difference said: ½ is a number character');
  await model.dispose();
});

const PREPEND_AND_REPLACE = { type: 'Sequence', normalizers: [{ type: 'Prepend', prepend: '▁' }, { type: 'Replace', pattern: { String: ' ' }, content: '▁' }] };
const BOS_FIRST = { type: 'TemplateProcessing', single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }], pair: [], special_tokens: { '<s>': { id: '<s>', ids: [1], tokens: ['<s>'] } } };

/** The forms tokenizer.json gives a SentencePiece tokenizer, with what encoding does around the text. */
const SENTENCE_PIECE_FORMS = {
  "Llama 2's (a normalizer puts ▁ in front)": { spacePrefix: true, normalizer: PREPEND_AND_REPLACE, pre_tokenizer: null, post_processor: null, add_bos_token: false, bos_token: undefined },
  'the newer Metaspace pre-tokenizer, BOS from the post-processor': { spacePrefix: true, normalizer: null, pre_tokenizer: { type: 'Metaspace', replacement: '▁', prepend_scheme: 'first', split: false }, post_processor: BOS_FIRST, add_bos_token: undefined, bos_token: undefined },
  "Gemma's (no ▁ in front, a split at spaces that finds none)": { spacePrefix: false, normalizer: { type: 'Replace', pattern: { String: ' ' }, content: '▁' }, pre_tokenizer: { type: 'Split', pattern: { String: ' ' }, behavior: 'MergedWithPrevious', invert: false }, post_processor: BOS_FIRST, add_bos_token: true, bos_token: '<s>' },
};
type SentencePieceForm = (typeof SENTENCE_PIECE_FORMS)[keyof typeof SENTENCE_PIECE_FORMS];

/**
 * A SentencePiece tokenizer as tokenizer.json writes Llama 2's: <unk> <s> </s>, the 256 byte tokens, the texts'
 * characters (spaces as ▁), then a merge for every neighbouring pair, by first appearance; one character left out
 * of the vocabulary so that byte fallback shows.
 */
function sentencePieceJson({ spacePrefix, normalizer, pre_tokenizer, post_processor }: SentencePieceForm): object {
  const vocab: Record<string, number> = { '<unk>': 0, '<s>': 1, '</s>': 2 };
  for (let b = 0; b < 256; b++) vocab[`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`] = 3 + b;
  const pieces = TEXTS.map((text) => [...`${spacePrefix ? '▁' : ''}${text.replaceAll(' ', '▁')}`]);
  for (const chars of pieces) for (const c of chars) if (!(c in vocab) && c !== '語') vocab[c] = Object.keys(vocab).length;
  const merges: string[] = [];
  for (const chars of pieces) {
    for (let i = 0; i + 1 < chars.length; i++) {
      const [a, b] = [chars[i], chars[i + 1]];
      if (!(a in vocab) || !(b in vocab) || `${a}${b}` in vocab) continue;
      vocab[`${a}${b}`] = Object.keys(vocab).length;
      merges.push(`${a} ${b}`);
    }
  }
  return {
    version: '1.0',
    model: { type: 'BPE', vocab, merges, dropout: null, unk_token: '<unk>', continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: true, byte_fallback: true },
    normalizer, pre_tokenizer, post_processor,
    decoder: { type: 'Sequence', decoders: [{ type: 'Replace', pattern: { String: '▁' }, content: ' ' }, { type: 'ByteFallback' }, { type: 'Fuse' }] },
    added_tokens: [{ id: 0, content: '<unk>', special: true }, { id: 1, content: '<s>', special: true }, { id: 2, content: '</s>', special: true }],
  };
}

for (const [name, form] of Object.entries(SENTENCE_PIECE_FORMS)) {
  test(`llama.cpp tokenizes as Hugging Face with a SentencePiece tokenizer in ${name} form (▁ for spaces, byte fallback)`, async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'lorakit-gguf-tokenizer-'));
    await cp(TINY_CODE_LLAMA, dir, { recursive: true });
    await writeFile(join(dir, 'tokenizer.json'), JSON.stringify(sentencePieceJson(form)));
    await writeFile(join(dir, 'tokenizer_config.json'), JSON.stringify({ tokenizer_class: 'PreTrainedTokenizerFast', add_bos_token: form.add_bos_token, bos_token: form.bos_token }));
    await writeGgufModel(await AutoModelForCausalLM.fromPretrained(dir), join(dir, 'model.gguf'), { source: dir });
    const model = await (await llama).loadModel({ modelPath: join(dir, 'model.gguf') });
    const tokenizer = await AutoTokenizer.fromPretrained(dir);
    const bos = model.tokens.shouldPrependBosToken ? [model.tokens.bos] : [];
    t.is(bos.length, form.post_processor === null ? 0 : 1);
    for (const text of TEXTS) t.deepEqual([...bos, ...model.tokenize(text)], tokenizer.encode(text, { addSpecialTokens: true }), JSON.stringify(text));
    await model.dispose();
  });
}

test('a Metaspace pre-tokenizer that splits at every ▁ is refused with what it is', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'lorakit-gguf-tokenizer-'));
  await cp(TINY_CODE_LLAMA, dir, { recursive: true });
  const form = { ...SENTENCE_PIECE_FORMS['the newer Metaspace pre-tokenizer, BOS from the post-processor'] };
  form.pre_tokenizer = { ...form.pre_tokenizer, split: true };
  await writeFile(join(dir, 'tokenizer.json'), JSON.stringify(sentencePieceJson(form)));
  const model = await AutoModelForCausalLM.fromPretrained(dir);
  await t.throwsAsync(writeGgufModel(model, join(dir, 'model.gguf'), { source: dir }), { message: /tokenizer\.json: a \{"type":"Metaspace".*"split":true\} pre-tokenizer cannot be written as GGUF yet/ });
});

/** Phi-3's added tokens: its chat tokens strip the spaces after them, as does </s>; <unk>, <s> and <|endoftext|> do not. */
function withPhi3Tokens(json: { model: { vocab: Record<string, number> }; added_tokens: object[] }): object {
  const chat = ['<|endoftext|>', '<|assistant|>', '<|end|>', '<|user|>'];
  for (const content of chat) json.model.vocab[content] = Object.keys(json.model.vocab).length;
  const added = ['<unk>', '<s>', '</s>', ...chat].map((content) => ({ id: json.model.vocab[content], content, special: true, lstrip: false, rstrip: !['<unk>', '<s>', '<|endoftext|>'].includes(content), normalized: false, single_word: false }));
  return { ...json, added_tokens: added };
}

test('llama.cpp strips the spaces after Phi-3\'s special tokens as its tokenizer does, whatever the folder is called, and a folder called phi3 does not make it strip others\'', async (t) => {
  const texts = ['<|user|>  x = 12345 + 6.78<|end|>\n<|assistant|> it\'s 1000000\t\tok</s>  <|endoftext|>  ok'];
  for (const [phi3Tokens, folder] of [[true, 'my-finetune-'], [false, 'phi3-lookalike-'], [false, 'Phi-3-']] as const) {
    const dir = await mkdtemp(join(tmpdir(), folder));
    await cp(TINY_CODE_LLAMA, dir, { recursive: true });
    const json = sentencePieceJson(SENTENCE_PIECE_FORMS["Llama 2's (a normalizer puts ▁ in front)"]) as Parameters<typeof withPhi3Tokens>[0];
    await writeFile(join(dir, 'tokenizer.json'), JSON.stringify(phi3Tokens ? withPhi3Tokens(json) : json));
    await writeFile(join(dir, 'tokenizer_config.json'), JSON.stringify({ tokenizer_class: 'LlamaTokenizerFast', add_bos_token: false, legacy: false }));
    await writeGgufModel(await AutoModelForCausalLM.fromPretrained(dir), join(dir, 'model.gguf'), { source: dir });
    const model = await (await llama).loadModel({ modelPath: join(dir, 'model.gguf') });
    const tokenizer = await AutoTokenizer.fromPretrained(dir);
    for (const text of texts) t.deepEqual(Array.from(model.tokenize(text, true)), tokenizer.encode(text), `${folder} ${JSON.stringify(text)}`);
    await model.dispose();
  }
});
