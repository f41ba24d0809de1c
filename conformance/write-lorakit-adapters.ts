/**
 * The other direction: adapters written by lorakit, for PEFT to load
 * (check_lorakit_adapters.py). Each case gets lorakit's own logits beside it.
 *
 *   tsx conformance/write-lorakit-adapters.ts conformance/out/lorakit-adapters
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { Tensor, init, manualSeed, noGrad } from '@lorakit/core';
import { SafetensorsFile, saveSafetensors, tensorRecord } from '@lorakit/core/io';
import { AutoModelForCausalLM } from '@lorakit/models';
import { LoraConfig, getPeftModel, type LoraConfigFields } from '@lorakit/adapters';

const MODELS = 'packages/models/fixtures';
const CASES: Record<string, [string, Partial<LoraConfigFields>]> = {
  'list-targets': ['llama-rope-linear', { targetModules: ['q_proj', 'v_proj'] }],
  'regex-layers': ['llama-rope-llama3', { targetModules: '.*\\.layers\\.1\\..*_proj' }],
  'all-linear-exclude': ['qwen2', { targetModules: 'all-linear', excludeModules: ['o_proj'] }],
  'rslora-patterns': ['mistral', { targetModules: ['q_proj', 'k_proj', 'down_proj'], useRslora: true, rankPattern: { k_proj: 2 }, alphaPattern: { down_proj: 12 } }],
  'layers-to-transform': ['mistral', { targetModules: ['gate_proj', 'up_proj'], layersToTransform: [0], layersPattern: 'layers' }],
  dora: ['llama-bf16-tied', { targetModules: ['q_proj', 'o_proj', 'down_proj'], useDora: true }],
  'gpt2-conv1d': ['gpt2', { targetModules: ['c_attn', 'c_fc'], bias: 'lora_only' }],
  'modules-to-save': ['llama-rope-linear', { targetModules: ['v_proj'], modulesToSave: ['lm_head'] }],
  'qwen3-all-linear': ['qwen3', { targetModules: 'all-linear' }],
  'smollm3-all-linear': ['smollm3', { targetModules: 'all-linear' }],
  'granite-all-linear': ['granite', { targetModules: 'all-linear' }],
  'gemma-all-linear': ['gemma', { targetModules: 'all-linear' }],
  'gemma2-all-linear': ['gemma2', { targetModules: 'all-linear' }],
  'gemma3_text-all-linear': ['gemma3_text', { targetModules: 'all-linear' }],
  'phi3-all-linear': ['phi3', { targetModules: 'all-linear' }],
  'olmo2-all-linear': ['olmo2', { targetModules: 'all-linear' }],
  'embedding-qv': ['llama', { targetModules: ['embed_tokens', 'q_proj', 'v_proj'] }],
  'gpt2-wte': ['gpt2', { targetModules: ['wte', 'c_attn'] }],
  'gemma3-embedding': ['gemma3_text', { targetModules: ['embed_tokens', 'o_proj'] }],
  'tied-embedding-rslora': ['llama-bf16-tied', { targetModules: '.*\\.(embed_tokens|v_proj)', useRslora: true, rankPattern: { embed_tokens: 2 } }],
};

const out = process.argv[2] ?? 'conformance/out/lorakit-adapters';
for (const [name, [base, fields]] of Object.entries(CASES)) {
  manualSeed(1);
  const model = await AutoModelForCausalLM.fromPretrained(join(MODELS, base));
  const peft = getPeftModel(model, new LoraConfig({ r: 4, loraAlpha: 8, ...fields }));
  noGrad(() => {
    for (const [key, p] of peft.namedParameters()) {
      if (key.includes('lora_B') || key.includes('lora_embedding_B')) init.normal_(p, 0, 0.05);
      else if (key.includes('lora_embedding_A')) init.normal_(p); // A starts at zero for embeddings
      else if (p.requiresGrad && !key.includes('lora_A')) p.values.forEach((v, i) => (p.values[i] = v + 0.01 * Math.sin(i)));
    }
  });
  const reference = await SafetensorsFile.open(join(MODELS, base, 'reference.safetensors'));
  const inputIds = await reference.read('input_ids');
  const attentionMask = await reference.read('attention_mask');
  await reference.close();
  peft.eval();
  const { logits } = noGrad(() => peft.call({ inputIds, attentionMask }));
  const dir = join(out, name);
  await mkdir(dir, { recursive: true });
  await peft.savePretrained(join(dir, 'adapter'));
  await saveSafetensors(join(dir, 'lorakit.safetensors'), new Map([
    ['input_ids', tensorRecord(inputIds, 'I64')], ['attention_mask', tensorRecord(attentionMask, 'I64')], ['logits', tensorRecord(logits, 'F32')],
    ['base', tensorRecord(Tensor.fromArray([...Buffer.from(join(MODELS, base))], 'int32'), 'U8')],
  ]));
  console.log(`${name}: written`);
}
