/**
 * AutoTokenizer: @huggingface/transformers' tokenizer, loaded offline from the
 * model folder (tokenizer.json and tokenizer_config.json), behind a small API.
 *
 *   const tok = await AutoTokenizer.fromPretrained('examples/models/tiny-code-llama');
 *   tok.encode('def f():')     // ids, no special tokens added unless the config says so
 */
import { access } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { PreTrainedTokenizer } from '@huggingface/transformers';
import { FileFormatError } from '@lorakit/core/io';

export interface ChatMessage {
  role: string;
  content: string;
}

export class Tokenizer {
  // NOTE: private, so that lorakit's declarations do not carry transformers.js' types to its users.
  readonly #inner: PreTrainedTokenizer;

  private constructor(inner: PreTrainedTokenizer, readonly dir: string) {
    this.#inner = inner;
  }

  /** The tokenizer of a model folder (see AutoTokenizer). */
  static async fromPretrained(dir: string): Promise<Tokenizer> {
    const absolute = resolve(dir); // NOTE: a relative path would be taken for a Hub id
    for (const file of ['tokenizer.json', 'tokenizer_config.json']) {
      await access(join(absolute, file)).catch(() => {
        throw new FileFormatError('MissingTokenizer', join(absolute, file), 'missing; lorakit loads tokenizers from tokenizer.json and tokenizer_config.json');
      });
    }
    // Loaded on first use: it is most of the start-up time of commands that need no tokenizer (`lora merge`).
    const { AutoTokenizer: HFAutoTokenizer, env } = await import('@huggingface/transformers');
    env.allowRemoteModels = false;
    return new Tokenizer(await HFAutoTokenizer.from_pretrained(absolute, { local_files_only: true }), absolute);
  }

  encode(text: string, { addSpecialTokens = false } = {}): number[] {
    return this.#inner.encode(text, { add_special_tokens: addSpecialTokens });
  }

  decode(ids: readonly number[], { skipSpecialTokens = false } = {}): string {
    if (ids.length === 0) return ''; // the wrapped tokenizer rejects an empty list
    return this.#inner.decode([...ids], { skip_special_tokens: skipSpecialTokens });
  }

  get eosTokenId(): number | null {
    return this.#inner.eos_token_id ?? null;
  }

  get padTokenId(): number | null {
    return this.#inner.pad_token_id ?? null;
  }

  get bosTokenId(): number | null {
    return this.#inner.bos_token_id ?? null;
  }

  get hasChatTemplate(): boolean {
    return typeof this.#inner.chat_template === 'string' && this.#inner.chat_template.length > 0;
  }

  /** Render messages with the tokenizer's chat template. */
  applyChatTemplate(messages: ChatMessage[], { addGenerationPrompt = false } = {}): string {
    if (!this.hasChatTemplate) throw new Error(`${this.dir}: the tokenizer has no chat template`);
    return this.#inner.apply_chat_template(messages, { tokenize: false, add_generation_prompt: addGenerationPrompt }) as string;
  }
}

export class AutoTokenizer {
  static fromPretrained(dir: string): Promise<Tokenizer> {
    return Tokenizer.fromPretrained(dir);
  }
}
