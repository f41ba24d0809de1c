/**
 * The tokenizer as llama.cpp reads it from a GGUF file, taken from the checkpoint's tokenizer.json and
 * tokenizer_config.json so that llama.cpp splits text exactly as the Hugging Face tokenizer does:
 *
 *   tokenizer.ggml.model       "gpt2": byte-level BPE, or "llama": SentencePiece BPE (byte fallback, ▁ for spaces)
 *   tokenizer.ggml.pre         gpt2's pre-tokenizer by llama.cpp's name for it: gpt-2, llama-bpe (Llama 3), qwen2, smollm
 *   tokenizer.ggml.tokens      every token by id, as tokenizer.json spells it
 *   tokenizer.ggml.token_type  1 normal, 2 unknown, 3 control (special added tokens), 4 user-defined (other added
 *                              tokens, padding rows), 6 byte (<0xNN>)
 *   tokenizer.ggml.merges      gpt2: "left right", in rank order; llama: tokenizer.ggml.scores instead
 *   bos / eos / padding ids, add_bos_token / add_eos_token, the chat template when there is one, and general.name
 *
 * What llama.cpp does otherwise in some texts only is said through onWarning; other tokenizers (unigram, or a
 * normalizer or pre-tokenizer lorakit cannot name) are refused with what they are.
 */
import { readFile } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { FileFormatError } from '@lorakit/core/io';
import type { GgufValue } from '@lorakit/core/io';
import type { LlamaFamilyConfig } from '../llama/config.ts';

/** A normalizer, pre-tokenizer or post-processor of tokenizer.json; a Sequence lists its steps. */
type Step = Record<string, unknown> & { type?: string };

interface TokenizerJson {
  model: { type: string; vocab: Record<string, number>; merges: Array<string | [string, string]>; byte_fallback?: boolean; unk_token?: string | null };
  normalizer?: Step | null;
  pre_tokenizer?: Step | null;
  post_processor?: Step | null;
  added_tokens?: Array<{ id: number; content: string; special: boolean; lstrip?: boolean; rstrip?: boolean }>;
}

type Metadata = Array<[string, GgufValue]>;

const TOKEN_TYPES = { normal: 1, unknown: 2, control: 3, userDefined: 4, byte: 6 } as const;

async function readJson(path: string): Promise<Record<string, unknown> | null> {
  const text = await readFile(path, 'utf8').catch(() => null);
  if (text === null) return null;
  try {
    return JSON.parse(text) as Record<string, unknown>;
  } catch (error) {
    throw new FileFormatError('ConfigParseError', path, `not valid JSON: ${(error as Error).message}`);
  }
}

/** A step's parts: the steps of a Sequence (under `list`), the step itself, or none. */
function stepsOf(step: Step | null | undefined, list: string): Step[] {
  if (step === null || step === undefined) return [];
  return step.type === 'Sequence' ? (step[list] as Step[]) : [step];
}

// ---- byte-level BPE ("gpt2") ----

/** The split patterns llama.cpp implements under a name, as tokenizer.json files write them (before the byte-level step). */
const SPLIT_PATTERNS: Record<string, string> = {
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+": 'llama-bpe', // Llama 3
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+": 'qwen2', // Qwen2, Qwen2.5, Qwen3
};

const SMOLLM_DIFFERENCE = "llama.cpp's smollm pre-tokenizer sets apart every Unicode number character (½, ², ٣, ...), where the Hugging Face tokenizer's Digits step sets apart only 0-9: texts with other number characters tokenize differently under llama.cpp";
const NFC_DIFFERENCE = "llama.cpp does not put text in Unicode NFC first, as this tokenizer's normalizer does: text not already in NFC (decomposed accents, say) tokenizes differently";

/** llama.cpp's name for a byte-level tokenizer's pre-tokenizer and what it does otherwise, or an error saying what it is. */
function byteLevelPreTokenizer(pre: Step | null, file: string): { name: string; difference?: string } {
  const byteLevel = (p: Step | undefined, regex: boolean) => p?.type === 'ByteLevel' && (p.use_regex !== false) === regex;
  if (byteLevel(pre ?? undefined, true)) return { name: 'gpt-2' };
  const [first, second, ...rest] = pre?.type === 'Sequence' ? stepsOf(pre, 'pretokenizers') : [];
  if (rest.length === 0 && first?.type === 'Split' && byteLevel(second, false) && first.behavior === 'Isolated' && first.invert !== true) {
    const name = SPLIT_PATTERNS[(first.pattern as { Regex?: string } | undefined)?.Regex ?? ''];
    if (name !== undefined) return { name };
  }
  if (rest.length === 0 && first?.type === 'Digits' && first.individual_digits === true && byteLevel(second, true)) return { name: 'smollm', difference: SMOLLM_DIFFERENCE };
  throw new FileFormatError('UnsupportedTokenizer', file, `a ${JSON.stringify(pre).slice(0, 160)} pre-tokenizer cannot be written as GGUF yet (lorakit writes GPT-2's, Llama 3's, Qwen2's and SmolLM's)`);
}

/** What llama.cpp does otherwise with a byte-level tokenizer's normalizer: nothing for none, NFC said; others refused. */
function byteLevelNormalizer(normalizer: Step | null | undefined, file: string): string | undefined {
  if (normalizer === null || normalizer === undefined) return undefined;
  if (normalizer.type === 'NFC') return NFC_DIFFERENCE;
  throw new FileFormatError('UnsupportedTokenizer', file, `a ${JSON.stringify(normalizer).slice(0, 160)} normalizer cannot be written as GGUF: llama.cpp's byte-level tokenizers normalize nothing`);
}

function byteLevelMetadata(tokenizer: TokenizerJson, pre: string, tokens: string[], types: number[]): Metadata {
  return [
    ['tokenizer.ggml.model', { type: 'string', value: 'gpt2' }],
    ['tokenizer.ggml.pre', { type: 'string', value: pre }],
    ['tokenizer.ggml.tokens', { type: 'string[]', value: tokens }],
    ['tokenizer.ggml.token_type', { type: 'i32[]', value: types }],
    ['tokenizer.ggml.merges', { type: 'string[]', value: tokenizer.model.merges.map((m) => (Array.isArray(m) ? m.join(' ') : m)) }],
  ];
}

// ---- SentencePiece BPE ("llama") ----

const replacesSpaces = (n: Step) => n.type === 'Replace' && (n.pattern as { String?: string } | undefined)?.String === ' ' && n.content === '▁';
const splitsAtSpaces = (p: Step) => p.type === 'Split' && (p.pattern as { String?: string } | undefined)?.String === ' ' && p.behavior === 'MergedWithPrevious';

/**
 * Whether a SentencePiece tokenizer (BPE over characters with byte fallback, spaces as ▁) puts a ▁ in front of the
 * text, or null when the tokenizer is not one. tokenizer.json writes the three forms lorakit knows:
 *   - a Prepend ▁ and Replace ' ' -> ▁ normalizer, no pre-tokenizer (Llama 2, Mistral, TinyLlama): ▁ in front;
 *   - a Replace ' ' -> ▁ normalizer alone, and no pre-tokenizer or a split at spaces, which finds none (Gemma): none;
 *   - no normalizer and a Metaspace pre-tokenizer that does not split (newer files): ▁ in front unless it says never.
 */
function sentencePieceSpacePrefix(tokenizer: TokenizerJson): boolean | null {
  if (tokenizer.model.byte_fallback !== true) return null;
  const normalizers = stepsOf(tokenizer.normalizer, 'normalizers');
  const pre = stepsOf(tokenizer.pre_tokenizer, 'pretokenizers');
  if (normalizers.length === 2 && normalizers.some((n) => n.type === 'Prepend' && n.prepend === '▁') && normalizers.some(replacesSpaces) && pre.length === 0) return true;
  if (normalizers.length === 1 && replacesSpaces(normalizers[0]) && pre.every(splitsAtSpaces)) return false;
  const [metaspace] = pre;
  if (normalizers.length === 0 && pre.length === 1 && metaspace.type === 'Metaspace' && metaspace.replacement === '▁' && metaspace.split === false) {
    return (metaspace.prepend_scheme ?? (metaspace.add_prefix_space === false ? 'never' : 'always')) !== 'never';
  }
  return null;
}

/**
 * llama.cpp's SentencePiece tokenizer merges the neighbouring pair whose token scores highest: each token scores minus
 * the rank of the merge that makes it, so merges happen in the order BPE's ranks give; bytes are <0xNN>.
 */
function sentencePieceMetadata(tokenizer: TokenizerJson, spacePrefix: boolean, tokens: string[], types: number[]): Metadata {
  const scores = new Array<number>(tokens.length).fill(0);
  tokenizer.model.merges.forEach((merge, rank) => {
    const id = tokenizer.model.vocab[(Array.isArray(merge) ? merge : merge.split(' ')).join('')];
    if (id !== undefined) scores[id] = -rank;
  });
  tokens.forEach((token, id) => {
    if (/^<0x[0-9A-F]{2}>$/.test(token)) types[id] = TOKEN_TYPES.byte;
    if (token === tokenizer.model.unk_token) types[id] = TOKEN_TYPES.unknown;
  });
  const unknown = tokenizer.model.unk_token ? tokenizer.model.vocab[tokenizer.model.unk_token] : undefined;
  return [
    ['tokenizer.ggml.model', { type: 'string', value: 'llama' }],
    ['tokenizer.ggml.pre', { type: 'string', value: 'default' }],
    ['tokenizer.ggml.tokens', { type: 'string[]', value: tokens }],
    ['tokenizer.ggml.scores', { type: 'f32[]', value: scores }],
    ['tokenizer.ggml.token_type', { type: 'i32[]', value: types }],
    ['tokenizer.ggml.add_space_prefix', { type: 'bool', value: spacePrefix }],
    ...(unknown === undefined ? [] : [['tokenizer.ggml.unknown_token_id', { type: 'u32', value: unknown }] as [string, GgufValue]]),
  ];
}

// ---- special tokens ----

/**
 * The special ids and what encoding puts around a text. An id is the token tokenizer_config.json names (bos_token:
 * "<s>" or { content: "<s>" }), else (BOS) the one tokenizer.json's template post-processor starts a text with, else
 * config.json's. add_bos_token / add_eos_token: tokenizer_config.json's where it says, else whether that template
 * starts / ends a single text with a special token.
 */
function specialTokens(tokenizer: TokenizerJson, settings: Record<string, unknown>, config: LlamaFamilyConfig): Metadata {
  const template = stepsOf(tokenizer.post_processor, 'processors').find((p) => p.type === 'TemplateProcessing');
  const single = (template?.single as Array<{ SpecialToken?: { id: string } }> | undefined) ?? [];
  const first = single[0]?.SpecialToken;
  const templateBos = first === undefined ? undefined : (template!.special_tokens as Record<string, { ids: number[] }>)[first.id]?.ids[0];
  const named = (value: unknown) => {
    const content = typeof value === 'string' ? value : (value as { content?: string } | null | undefined)?.content;
    return content === undefined ? undefined : (tokenizer.added_tokens?.find((t) => t.content === content)?.id ?? tokenizer.model.vocab[content]);
  };
  const configured = (value: unknown) => (Array.isArray(value) ? value[0] : value) as number | null | undefined;
  const ids: Array<[string, number | null | undefined]> = [
    ['bos_token_id', named(settings.bos_token) ?? templateBos ?? configured(config.bos_token_id)],
    ['eos_token_id', named(settings.eos_token) ?? configured(config.eos_token_id)],
    ['padding_token_id', named(settings.pad_token) ?? configured(config.pad_token_id)],
  ];
  const said = (value: unknown, otherwise: boolean) => (typeof value === 'boolean' ? value : otherwise);
  return [
    ...ids.filter(([, v]) => typeof v === 'number').map(([key, v]): [string, GgufValue] => [`tokenizer.ggml.${key}`, { type: 'u32', value: v as number }]),
    ['tokenizer.ggml.add_bos_token', { type: 'bool', value: said(settings.add_bos_token, first !== undefined) }],
    ['tokenizer.ggml.add_eos_token', { type: 'bool', value: said(settings.add_eos_token, single.length > 1 && single.at(-1)?.SpecialToken !== undefined) }],
  ];
}

/** The tokens llama.cpp leaves unstripped when it strips Phi-3's (it needs all four, with </s>, in the vocabulary). */
const PHI3_UNSTRIPPED = ['<unk>', '<s>', '<|endoftext|>'];
const PHI3_NAME = /phi-?3/i;

/**
 * general.name: the checkpoint folder's name, which llama.cpp also reads for token flags. A name holding "phi3" or
 * "phi-3" makes it strip the spaces after every added token but <unk>, <s> and <|endoftext|> (Phi-3's rstrip flags),
 * and requires those tokens. The word is kept, or added, when tokenizer.json's flags are those; else taken out,
 * leaving llama.cpp stripping nothing; flags that are neither are said.
 */
function modelName(folder: string, tokenizer: TokenizerJson, file: string, onWarning: (message: string) => void): string {
  const added = tokenizer.added_tokens ?? [];
  const strips = (phi3: boolean) => added.every((t) => t.lstrip !== true && (t.rstrip === true) === (phi3 && !PHI3_UNSTRIPPED.includes(t.content)));
  const hasPhi3Tokens = [...PHI3_UNSTRIPPED, '</s>'].every((c) => c in tokenizer.model.vocab || added.some((t) => t.content === c));
  if (hasPhi3Tokens && strips(true)) return PHI3_NAME.test(folder) ? folder : `${folder} (phi3)`;
  if (!strips(false)) onWarning(`${file}: llama.cpp will not strip the spaces around ${added.filter((t) => t.lstrip || t.rstrip).map((t) => t.content).join(', ')} that this tokenizer's lstrip/rstrip flags strip`);
  return folder.replace(new RegExp(PHI3_NAME, 'gi'), (word) => word.replace('3', '_3'));
}

// ---- the whole ----

/** Every token by id (rows past the tokenizer's vocabulary as [PADn]) and its type, before the kind's own types. */
function vocabulary(tokenizer: TokenizerJson, size: number, file: string): { tokens: string[]; types: number[] } {
  const tokens = new Array<string>(size);
  const types = new Array<number>(size).fill(TOKEN_TYPES.normal);
  for (const [token, id] of Object.entries(tokenizer.model.vocab)) tokens[id] = token;
  for (const { id, content, special } of tokenizer.added_tokens ?? []) {
    tokens[id] = content;
    types[id] = special ? TOKEN_TYPES.control : TOKEN_TYPES.userDefined;
  }
  if (tokens.length > size) throw new FileFormatError('UnsupportedTokenizer', file, `holds token ids up to ${tokens.length - 1}, past the model's ${size} embeddings`);
  for (let id = 0; id < size; id++) {
    if (tokens[id] !== undefined) continue;
    tokens[id] = `[PAD${id}]`;
    types[id] = TOKEN_TYPES.userDefined;
  }
  return { tokens, types };
}

export async function tokenizerMetadata(source: string, config: LlamaFamilyConfig, onWarning: (message: string) => void): Promise<Metadata> {
  const file = join(source, 'tokenizer.json');
  const tokenizer = (await readJson(file)) as TokenizerJson | null;
  if (tokenizer === null) throw new FileFormatError('MissingTokenizer', file, 'missing; GGUF files carry the tokenizer, read from tokenizer.json');
  if (tokenizer.model?.type !== 'BPE') throw new FileFormatError('UnsupportedTokenizer', file, `a ${tokenizer.model?.type} tokenizer cannot be written as GGUF yet (lorakit writes BPE)`);
  const { tokens, types } = vocabulary(tokenizer, config.vocab_size, file);
  const spacePrefix = sentencePieceSpacePrefix(tokenizer);
  let kind: Metadata;
  if (spacePrefix !== null) {
    kind = sentencePieceMetadata(tokenizer, spacePrefix, tokens, types);
  } else {
    const pre = byteLevelPreTokenizer(tokenizer.pre_tokenizer ?? null, file);
    for (const difference of [pre.difference, byteLevelNormalizer(tokenizer.normalizer, file)]) if (difference !== undefined) onWarning(`${file}: ${difference}`);
    kind = byteLevelMetadata(tokenizer, pre.name, tokens, types);
  }
  const settings = (await readJson(join(source, 'tokenizer_config.json'))) ?? {};
  const chatTemplate = (settings.chat_template as string | undefined) ?? (await readFile(join(source, 'chat_template.jinja'), 'utf8').catch(() => undefined));
  return [
    ['general.name', { type: 'string', value: modelName(basename(resolve(source)), tokenizer, file, onWarning) }],
    ...kind,
    ...specialTokens(tokenizer, settings, config),
    ...(typeof chatTemplate === 'string' ? [['tokenizer.chat_template', { type: 'string', value: chatTemplate }] as [string, GgufValue]] : []),
  ];
}
