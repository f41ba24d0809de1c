/**
 * Gemma 3's multimodal config (model_type "gemma3", Gemma3ForConditionalGeneration), of which lorakit reads
 * the language model: text_config is a gemma3_text config (llama/config.ts) completed as one, vision_config is
 * kept as it is and never read. Field names are transformers' own.
 *
 *   { "model_type": "gemma3", "text_config": { "model_type": "gemma3_text", ... }, "vision_config": { ... },
 *     "image_token_index": 262144, "tie_word_embeddings": true }
 *
 * tie_word_embeddings is the top level's (transformers ties lm_head to the language model's embed_tokens by the
 * outer config). pad/eos/bos_token_id are the top level's when set there, else text_config's, as transformers'
 * generation config takes them; loadConfig writes them at the top level.
 */
import type { LlamaFamilyConfig } from '../llama/config.ts';

export interface Gemma3Config {
  model_type: 'gemma3';
  text_config: LlamaFamilyConfig;
  vision_config?: Record<string, unknown> | null;
  tie_word_embeddings: boolean;
  image_token_index: number;
  boi_token_index: number;
  eoi_token_index: number;
  mm_tokens_per_image: number;
  pad_token_id?: number | null;
  eos_token_id?: number | number[] | null;
  bos_token_id?: number | null;
  /** text_config.vocab_size, the field every config has; not enumerable, so a saved config.json does not hold it. */
  readonly vocab_size: number;
}

export const GEMMA3_DEFAULTS = { tie_word_embeddings: true, mm_tokens_per_image: 256, boi_token_index: 255_999, eoi_token_index: 256_000, image_token_index: 262_144 } as const;

/** The token-id fields a gemma3 config takes from text_config when its top level leaves them unset. */
export const TEXT_TOKEN_IDS = ['pad_token_id', 'eos_token_id', 'bos_token_id'] as const;
