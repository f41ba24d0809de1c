/**
 * Records -> token ids and labels for causal-LM fine-tuning, in the shapes people use:
 *
 *   {"text": "..."}                          loss on every token
 *   {"prompt": "...", "completion": "..."}   loss on the completion only
 *   {"messages": [{"role", "content"}, ...]} the tokenizer's chat template; loss on assistant turns only
 *
 * An EOS token ends each example (so the model learns to stop); examples
 * longer than maxLength are cut at the end, but a prompt that leaves no room
 * for its completion is an error.
 */
import type { JsonValue } from '@lorakit/core/io';
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

function field(record: JsonlRecord, name: string, file: string): string {
  const value = record.value[name];
  if (typeof value !== 'string') throw new DataError(file, record.line, `"${name}" must be a string, got ${value === undefined ? 'nothing' : JSON.stringify(value).slice(0, 40)}`);
  return value;
}

function messagesOf(value: JsonValue, file: string, line: number): ChatMessage[] {
  const ok = Array.isArray(value) && value.length > 0 && value.every((m) => typeof m === 'object' && m !== null && !Array.isArray(m) && typeof (m as Record<string, JsonValue>).role === 'string' && typeof (m as Record<string, JsonValue>).content === 'string');
  if (!ok) throw new DataError(file, line, '"messages" must be a non-empty list of {"role": string, "content": string}');
  return (value as Array<Record<string, string>>).map((m) => ({ role: m.role, content: m.content }));
}

/** Token ids for each message-boundary prefix, so assistant turns can be labelled exactly. */
function chatExample(tokenizer: Tokenizer, messages: ChatMessage[], file: string, line: number): TokenizedExample {
  if (!tokenizer.hasChatTemplate) throw new DataError(file, line, 'records with "messages" need a tokenizer with a chat template, and this one has none');
  const ids = tokenizer.encode(tokenizer.applyChatTemplate(messages));
  const labels = new Array<number>(ids.length).fill(IGNORE);
  messages.forEach((m, i) => {
    if (m.role !== 'assistant') return;
    const start = tokenizer.encode(tokenizer.applyChatTemplate(messages.slice(0, i), { addGenerationPrompt: true })).length;
    const end = tokenizer.encode(tokenizer.applyChatTemplate(messages.slice(0, i + 1))).length;
    for (let k = start; k < Math.min(end, ids.length); k++) labels[k] = ids[k];
  });
  if (!labels.some((l) => l !== IGNORE)) throw new DataError(file, line, 'the conversation has no assistant turn to learn from');
  return { inputIds: ids, labels };
}

export function tokenizeRecord(record: JsonlRecord, tokenizer: Tokenizer, file: string, { maxLength, appendEos = true }: TokenizeOptions): TokenizedExample {
  const eos = appendEos && tokenizer.eosTokenId !== null ? [tokenizer.eosTokenId] : [];
  let example: TokenizedExample;
  if ('messages' in record.value) {
    example = chatExample(tokenizer, messagesOf(record.value.messages, file, record.line), file, record.line);
  } else if ('prompt' in record.value || 'completion' in record.value) {
    const prompt = tokenizer.encode(field(record, 'prompt', file));
    const completion = [...tokenizer.encode(field(record, 'completion', file)), ...eos];
    if (prompt.length >= maxLength) throw new DataError(file, record.line, `the prompt is ${prompt.length} tokens, which leaves no room for the completion within maxLength ${maxLength}`);
    example = { inputIds: [...prompt, ...completion], labels: [...prompt.map(() => IGNORE), ...completion] };
  } else if ('text' in record.value) {
    const ids = [...tokenizer.encode(field(record, 'text', file)), ...eos];
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
