/**
 * Records -> token ids and labels for causal-LM fine-tuning, in the shapes people use:
 *
 *   {"text": "..."}                          loss on every token
 *   {"prompt": "...", "completion": "..."}   loss on the completion only
 *   {"messages": [{"role", "content"}, ...]} the tokenizer's chat template; loss on assistant turns only
 *
 * An EOS token ends each example (so the model learns to stop); examples
 * longer than maxLength are cut at the end, but a prompt that leaves no room
 * for its completion is an error. A huge record is cut before it is tokenized
 * (encodeAtMost), with the same kept ids as tokenizing it whole. Chat roles are
 * system, user, assistant and tool.
 */
import { quote, type JsonValue } from '@lorakit/core/io';
import type { ChatMessage, Tokenizer } from '../tokenizer.ts';
import { DataError, type JsonlRecord } from './jsonl.ts';

export interface TokenizedExample {
  inputIds: number[];
  /** -100 where no loss is taken. */
  labels: number[];
}

export interface TokenizeOptions {
  maxLength: number;
  appendEos?: boolean;
}

const IGNORE = -100;
export const CHAT_ROLES = ['system', 'user', 'assistant', 'tool'] as const;

/** Texts up to this many characters (or 16 per kept token, if more) are tokenized whole, exactly as before. */
const WHOLE_TEXT_CHARS = 65_536;

export interface Encoded {
  ids: number[];
  /** false when a prefix of the text was tokenized: then `ids` holds more than the limit, and the text more still. */
  complete: boolean;
}

/**
 * encode(text), of which only the first `limit` ids are needed, without tokenizing all of a huge text.
 *
 * No character bound is provably safe. A normalizer may delete characters (StripAccents, control characters),
 * so one token can stand for any number of them; and within one pre-token (a whole line for some tokenizers, the
 * whole text for SentencePiece-style BPE without a pre-tokenizer) BPE merges, or a Unigram segmentation, can
 * change from the cut backwards. So the text is tokenized in growing prefixes, each twice as long as the one
 * before, and a prefix is taken only when it yields at least twice the limit (the cut lies well past the kept
 * tokens) and the next, twice-longer prefix gives the same first `limit` ids (moving the cut changed nothing that
 * is kept). Otherwise the prefixes grow until the text is tokenized whole: exact then, at worst about three
 * times the work of one whole encode. The check is evidence, not proof (text past both cuts could in principle
 * reach back further than moving the cut did); in the tokenizers met in practice a cut changes only the last few
 * tokens before it, and the tests compare the kept ids with a whole encode.
 */
export function encodeAtMost(tokenizer: Pick<Tokenizer, 'encode'>, text: string, limit: number): Encoded {
  let chars = Math.max(WHOLE_TEXT_CHARS, 16 * limit);
  if (text.length <= chars) return { ids: tokenizer.encode(text), complete: true };
  let ids = tokenizer.encode(prefix(text, chars));
  for (;;) {
    chars *= 2;
    if (text.length <= chars) return { ids: tokenizer.encode(text), complete: true };
    const longer = tokenizer.encode(prefix(text, chars));
    if (ids.length >= 2 * limit && sameStart(ids, longer, limit)) return { ids: longer, complete: false };
    ids = longer;
  }
}

/** The first `chars` UTF-16 units of text, one fewer rather than half a surrogate pair. */
function prefix(text: string, chars: number): string {
  const code = text.charCodeAt(chars - 1);
  return text.slice(0, code >= 0xd800 && code <= 0xdbff ? chars - 1 : chars);
}

function sameStart(a: number[], b: number[], n: number): boolean {
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return false;
  return true;
}

function field(record: JsonlRecord, name: string, file: string): string {
  const value = record.value[name];
  if (typeof value !== 'string') throw new DataError(file, record.line, `"${name}" must be a string, got ${value === undefined ? 'nothing' : quote(value)}`);
  return value;
}

function messagesOf(value: JsonValue, file: string, line: number): ChatMessage[] {
  const ok = Array.isArray(value) && value.length > 0 && value.every((m) => typeof m === 'object' && m !== null && !Array.isArray(m) && typeof (m as Record<string, JsonValue>).role === 'string' && typeof (m as Record<string, JsonValue>).content === 'string');
  if (!ok) throw new DataError(file, line, '"messages" must be a non-empty list of {"role": string, "content": string}');
  const messages = (value as Array<Record<string, string>>).map((m) => ({ role: m.role, content: m.content }));
  const odd = messages.findIndex((m) => !(CHAT_ROLES as readonly string[]).includes(m.role));
  if (odd !== -1) throw new DataError(file, line, `message ${odd + 1} has role ${quote(messages[odd].role)}; the roles are ${CHAT_ROLES.join(', ')}`);
  return messages;
}

/**
 * Token ids for each message-boundary prefix, so assistant turns can be labelled exactly. A boundary past what
 * maxLength keeps (its prefix was cut) counts as Infinity: its turn is cut away, but it is still a turn to learn from.
 */
function chatExample(tokenizer: Tokenizer, messages: ChatMessage[], file: string, line: number, maxLength: number): TokenizedExample {
  if (!tokenizer.hasChatTemplate) throw new DataError(file, line, 'records with "messages" need a tokenizer with a chat template, and this one has none');
  const boundary = (text: string) => {
    const { ids, complete } = encodeAtMost(tokenizer, text, maxLength);
    return complete ? ids.length : Infinity;
  };
  const { ids, complete } = encodeAtMost(tokenizer, tokenizer.applyChatTemplate(messages), maxLength);
  const total = complete ? ids.length : Infinity;
  const labels = new Array<number>(ids.length).fill(IGNORE);
  let learnable = false;
  messages.forEach((m, i) => {
    if (m.role !== 'assistant') return;
    const start = boundary(tokenizer.applyChatTemplate(messages.slice(0, i), { addGenerationPrompt: true }));
    const end = boundary(tokenizer.applyChatTemplate(messages.slice(0, i + 1)));
    learnable ||= start === Infinity || start < Math.min(end, total);
    for (let k = start; k < Math.min(end, ids.length); k++) labels[k] = ids[k];
  });
  if (!learnable) throw new DataError(file, line, 'the conversation has no assistant turn to learn from');
  return { inputIds: ids, labels };
}

export function tokenizeRecord(record: JsonlRecord, tokenizer: Tokenizer, file: string, { maxLength, appendEos = true }: TokenizeOptions): TokenizedExample {
  const eos = appendEos && tokenizer.eosTokenId !== null ? [tokenizer.eosTokenId] : [];
  let example: TokenizedExample;
  if ('messages' in record.value) {
    example = chatExample(tokenizer, messagesOf(record.value.messages, file, record.line), file, record.line, maxLength);
  } else if ('prompt' in record.value || 'completion' in record.value) {
    const prompt = encodeAtMost(tokenizer, field(record, 'prompt', file), maxLength);
    const completionText = field(record, 'completion', file);
    const size = prompt.complete ? `${prompt.ids.length}` : `over ${maxLength}`;
    if (prompt.ids.length >= maxLength) throw new DataError(file, record.line, `the prompt is ${size} tokens, which leaves no room for the completion within maxLength ${maxLength}`);
    const completion = [...encodeAtMost(tokenizer, completionText, maxLength - prompt.ids.length).ids, ...eos];
    example = { inputIds: [...prompt.ids, ...completion], labels: [...prompt.ids.map(() => IGNORE), ...completion] };
  } else if ('text' in record.value) {
    const ids = [...encodeAtMost(tokenizer, field(record, 'text', file), maxLength).ids, ...eos];
    example = { inputIds: ids, labels: [...ids] };
  } else {
    throw new DataError(file, record.line, 'a record needs "text", "prompt" and "completion", or "messages"');
  }
  return { inputIds: example.inputIds.slice(0, maxLength), labels: example.labels.slice(0, maxLength) };
}

export function tokenizeRecords(records: JsonlRecord[], tokenizer: Tokenizer, file: string, options: TokenizeOptions): TokenizedExample[] {
  if (!(Number.isInteger(options.maxLength) && options.maxLength > 1)) throw new Error(`maxLength must be an integer above 1, got ${options.maxLength}`);
  return records.map((r) => tokenizeRecord(r, tokenizer, file, options));
}
