/**
 * How a checkpoint's keys name the model's tensors, and only here. Most checkpoints store the module names
 * themselves. Gemma 3's multimodal checkpoints (model_type "gemma3") store the language model as transformers
 * saves it, and the vision part beside it:
 *
 *   stored key                                  lorakit's (and transformers' in-memory) name
 *   language_model.model.layers.0.mlp.up_proj.weight  ->  model.language_model.layers.0.mlp.up_proj.weight
 *   language_model.lm_head.weight               ->  lm_head.weight (untied checkpoints only)
 *   model.language_model.* / lm_head.weight     ->  themselves (newer checkpoints store the in-memory names)
 *   vision_tower.*, multi_modal_projector.*     ->  left alone: lorakit loads the language model only
 *   (also under model.)
 *
 *   const keys = checkpointKeys('gemma3');
 *   keys.nameOf('language_model.model.norm.weight')  // 'model.language_model.norm.weight'
 *   keys.storedOf('model.language_model.norm.weight')  // 'language_model.model.norm.weight' (what saving writes)
 */
export interface CheckpointKeys {
  /** The model tensor a stored key holds; null for a tensor lorakit leaves alone (the vision tower and projector). */
  nameOf(stored: string): string | null;
  /** The key a model tensor is saved under: the convention transformers' save_pretrained writes. */
  storedOf(name: string): string;
  /** What lorakit leaves alone in such checkpoints, for the one-line note. */
  leftAlone: string | null;
}

const IDENTITY: CheckpointKeys = { nameOf: (stored) => stored, storedOf: (name) => name, leftAlone: null };

/** Stored prefix -> in-memory prefix, first match wins (transformers' "llava" renaming in conversion_mapping.py). */
const GEMMA3_RENAMES: Array<[string, string]> = [
  ['language_model.lm_head.', 'lm_head.'],
  ['language_model.model.', 'model.language_model.'],
];
const GEMMA3_VISION = /^(model\.)?(vision_tower|multi_modal_projector)\./;

function renamed(key: string, renames: Array<[string, string]>, direction: 0 | 1): string {
  const rule = renames.find((r) => key.startsWith(r[direction]));
  return rule === undefined ? key : rule[1 - direction] + key.slice(rule[direction].length);
}

const GEMMA3: CheckpointKeys = {
  nameOf: (stored) => (GEMMA3_VISION.test(stored) ? null : renamed(stored, GEMMA3_RENAMES, 0)),
  storedOf: (name) => renamed(name, GEMMA3_RENAMES, 1),
  leftAlone: 'the vision tower and multi-modal projector',
};

export function checkpointKeys(modelType: string): CheckpointKeys {
  return modelType === 'gemma3' ? GEMMA3 : IDENTITY;
}
