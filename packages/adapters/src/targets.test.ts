/** Target selection follows PEFT's check_target_module_exists, and says what matched nothing. */
import test from 'ava';
import { AutoModelForCausalLM } from '@lorakit/models';
import { LoraConfig } from './config.ts';
import { layerIndex, selectTargets, targetMatches } from './targets.ts';
import { MODEL_FIXTURES } from './testing.ts';

const llama = await AutoModelForCausalLM.fromPretrained(`${MODEL_FIXTURES}/llama-rope-linear`);
const gpt2 = await AutoModelForCausalLM.fromPretrained(`${MODEL_FIXTURES}/gpt2`);
const config = (fields: ConstructorParameters<typeof LoraConfig>[0]) => new LoraConfig(fields);

test('a list entry matches the whole name or a dotted suffix, never a bare substring', (t) => {
  const c = config({ targetModules: ['q_proj', 'self_attn.v_proj'] });
  t.true(targetMatches(c, 'model.layers.0.self_attn.q_proj'));
  t.true(targetMatches(c, 'q_proj'));
  t.true(targetMatches(c, 'model.layers.1.self_attn.v_proj'));
  t.false(targetMatches(c, 'model.layers.0.self_attn.xq_proj'));
  t.false(targetMatches(c, 'model.layers.0.self_attn.q_proj.lora_A'));
});

test('a string target is a regex over the whole name', (t) => {
  const c = config({ targetModules: '.*\\.(q|v)_proj' });
  t.true(targetMatches(c, 'model.layers.0.self_attn.q_proj'));
  t.false(targetMatches(c, 'model.layers.0.self_attn.q_proj_extra'));
  t.false(targetMatches(config({ targetModules: 'q_proj' }), 'model.layers.0.self_attn.q_proj'), 'anchored at both ends');
});

test('exclude_modules wins, by regex or by list', (t) => {
  t.false(targetMatches(config({ targetModules: ['q_proj'], excludeModules: ['layers.0.self_attn.q_proj'] }), 'model.layers.0.self_attn.q_proj'));
  t.true(targetMatches(config({ targetModules: ['q_proj'], excludeModules: ['layers.0.self_attn.q_proj'] }), 'model.layers.1.self_attn.q_proj'));
  t.false(targetMatches(config({ targetModules: ['q_proj'], excludeModules: '.*layers\\.1.*' }), 'model.layers.1.self_attn.q_proj'));
});

test('layers_to_transform reads the index after layers_pattern (or the first .name.N.), for list targets only', (t) => {
  t.is(layerIndex('model.layers.3.self_attn.q_proj', null), 3);
  t.is(layerIndex('transformer.h.11.attn.c_attn', 'h'), 11);
  t.is(layerIndex('model.layers.3.self_attn.q_proj', 'blocks'), null);
  t.true(targetMatches(config({ targetModules: ['q_proj'], layersToTransform: [1], layersPattern: 'layers' }), 'model.layers.1.self_attn.q_proj'));
  t.false(targetMatches(config({ targetModules: ['q_proj'], layersToTransform: 1 }), 'model.layers.0.self_attn.q_proj'));
  t.true(targetMatches(config({ targetModules: '.*q_proj', layersToTransform: [1] }), 'model.layers.0.self_attn.q_proj'), 'ignored for a regex, as in PEFT');
});

test('modules inside a modules_to_save module are never targets', (t) => {
  t.false(targetMatches(config({ targetModules: ['lm_head'], modulesToSave: ['lm_head'] }), 'lm_head'));
});

test('all-linear takes every Linear (or Conv1D) except the output head', (t) => {
  const names = selectTargets(llama, config({ targetModules: 'all-linear' })).names;
  t.is(names.length, 2 * 7);
  t.false(names.includes('lm_head'));
  const gpt2Names = selectTargets(gpt2, config({ targetModules: 'all-linear' })).names;
  t.deepEqual(gpt2Names.filter((n) => n.startsWith('transformer.h.0.')), ['transformer.h.0.attn.c_attn', 'transformer.h.0.attn.c_proj', 'transformer.h.0.mlp.c_fc', 'transformer.h.0.mlp.c_proj']);
});

// What PEFT 0.21.2's get_peft_model(all-linear) targets on the same fixture (the q/k norms are RMSNorm, not Linear).
const PEFT_ALL_LINEAR: Record<string, string[]> = {
  qwen3: ['mlp.down_proj', 'mlp.gate_proj', 'mlp.up_proj', 'self_attn.k_proj', 'self_attn.o_proj', 'self_attn.q_proj', 'self_attn.v_proj'],
  granite: ['mlp.down_proj', 'mlp.gate_proj', 'mlp.up_proj', 'self_attn.k_proj', 'self_attn.o_proj', 'self_attn.q_proj', 'self_attn.v_proj'],
  smollm3: ['mlp.down_proj', 'mlp.gate_proj', 'mlp.up_proj', 'self_attn.k_proj', 'self_attn.o_proj', 'self_attn.q_proj', 'self_attn.v_proj'],
  gemma: ['mlp.down_proj', 'mlp.gate_proj', 'mlp.up_proj', 'self_attn.k_proj', 'self_attn.o_proj', 'self_attn.q_proj', 'self_attn.v_proj'],
  gemma2: ['mlp.down_proj', 'mlp.gate_proj', 'mlp.up_proj', 'self_attn.k_proj', 'self_attn.o_proj', 'self_attn.q_proj', 'self_attn.v_proj'],
  gemma3_text: ['mlp.down_proj', 'mlp.gate_proj', 'mlp.up_proj', 'self_attn.k_proj', 'self_attn.o_proj', 'self_attn.q_proj', 'self_attn.v_proj'],
  phi3: ['mlp.down_proj', 'mlp.gate_up_proj', 'self_attn.o_proj', 'self_attn.qkv_proj'],
  olmo2: ['mlp.down_proj', 'mlp.gate_proj', 'mlp.up_proj', 'self_attn.k_proj', 'self_attn.o_proj', 'self_attn.q_proj', 'self_attn.v_proj'],
};
for (const [family, perLayer] of Object.entries(PEFT_ALL_LINEAR)) {
  test(`all-linear on ${family} selects what PEFT selects`, async (t) => {
    const model = await AutoModelForCausalLM.fromPretrained(`${MODEL_FIXTURES}/${family}`);
    const expected = [0, 1].flatMap((i) => perLayer.map((m) => `model.layers.${i}.${m}`));
    t.deepEqual(selectTargets(model, config({ targetModules: 'all-linear' })).names.sort(), expected);
  });
}

test('list entries that match nothing are reported; nothing at all is an error listing the layers', (t) => {
  const selection = selectTargets(llama, config({ targetModules: ['q_proj', 'qkv_proj', 'query'] }));
  t.deepEqual(selection.unmatchedEntries, ['qkv_proj', 'query']);
  const error = t.throws(() => selectTargets(llama, config({ targetModules: ['query_key_value'] })));
  t.is(error?.name, 'NoMatchingModules');
  t.regex(error!.message, /matched no module of the llama model; its linear layers are: .*q_proj.*v_proj/);
});

test('layers_to_transform that leaves out every targeted module is an error naming it and the layers, not the targets', (t) => {
  const layers = selectTargets(llama, config({ targetModules: ['q_proj'] })).names.length;
  const error = t.throws(() => selectTargets(llama, config({ targetModules: ['q_proj', 'v_proj'], layersToTransform: [99] })));
  t.is(error?.name, 'NoMatchingLayers');
  t.is(error?.message, `layers_to_transform [99] matched no layer of the llama model that has the target modules; its layers are 0 to ${layers - 1}`);
  t.deepEqual((error as Error & { layers: number[] }).layers, Array.from({ length: layers }, (_, i) => i));
  t.is(t.throws(() => selectTargets(llama, config({ targetModules: ['qkv'], layersToTransform: [0] })))?.name, 'NoMatchingModules', 'the targets match nothing even without the layers');
});

test('a name that matches a non-linear module is an error naming its type', (t) => {
  t.throws(() => selectTargets(llama, config({ targetModules: ['mlp'] })), { message: /target module model\.layers\.0\.mlp is a LlamaMLP/ });
});

test('config validation names the field', (t) => {
  t.throws(() => config({ r: 0 }), { message: /LoraConfig\.r: must be a positive integer, got 0/ });
  t.throws(() => config({ r: 2.5 }), { message: /LoraConfig\.r/ });
  t.throws(() => config({ loraAlpha: Number.NaN }), { message: /LoraConfig\.loraAlpha/ });
  t.throws(() => config({ loraDropout: 1 }), { message: /LoraConfig\.loraDropout/ });
  t.throws(() => config({ bias: 'some' as never }), { message: /LoraConfig\.bias/ });
  t.throws(() => config({ targetModules: '(' }), { message: /not a valid regular expression/ });
});

test('config messages show values through quote(): strings with their quotes, NaN and Infinity as written', (t) => {
  t.throws(() => config({ r: '8' as never }), { message: 'LoraConfig.r: must be a positive integer, got "8"' });
  t.throws(() => config({ r: Number.NaN }), { message: 'LoraConfig.r: must be a positive integer, got NaN' });
  t.throws(() => config({ loraAlpha: -Infinity }), { message: 'LoraConfig.loraAlpha: must be a finite number, got -Infinity' });
  t.throws(() => config({ loraAlpha: '16' as never }), { message: 'LoraConfig.loraAlpha: must be a finite number, got "16"' });
  t.throws(() => config({ loraDropout: Number.NaN }), { message: 'LoraConfig.loraDropout: must be in [0, 1), got NaN' });
  t.throws(() => config({ layersToTransform: [0, Number.NaN] }), { message: 'LoraConfig.layersToTransform: must hold non-negative integers, got [0,NaN]' });
  t.throws(() => config({ rankPattern: { q_proj: Infinity } }), { message: 'LoraConfig.rankPattern: "q_proj": Infinity is not a positive integer' });
  t.throws(() => config({ alphaPattern: { 'q\n': '2' as never } }), { message: 'LoraConfig.alphaPattern: "q\\n": "2" is not a finite number' });
  t.throws(() => config({ rankPattern: { '(': 2 } }), { message: 'LoraConfig.rankPattern: "(" is not a valid regular expression' });
});

test('rank and alpha patterns: the first key matching the end of the name wins', (t) => {
  const c = config({ r: 8, loraAlpha: 16, rankPattern: { q_proj: 4, 'layers.1.self_attn.q_proj': 2 }, alphaPattern: { '.*_proj': 3 } });
  t.deepEqual(c.rankAndAlpha('model.layers.1.self_attn.q_proj'), { r: 4, alpha: 3 });
  t.deepEqual(c.rankAndAlpha('model.layers.1.mlp.gate'), { r: 8, alpha: 16 });
  t.is(config({ r: 16, loraAlpha: 8, useRslora: true }).scaling('x'), 2);
  t.is(config({ r: 16, loraAlpha: 8 }).scaling('x'), 0.5);
});
