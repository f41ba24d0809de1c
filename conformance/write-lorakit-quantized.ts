/**
 * A model quantized by lorakit (quantizeModel) and saved in bitsandbytes'
 * format, for transformers + bitsandbytes to load (check_lorakit_quantized.py);
 * and, in <out>-int8, the LLM.int8 codes of quantizeModel8bit with the logits they
 * give (check_lorakit_int8.py).
 *   tsx conformance/write-lorakit-quantized.ts conformance/out/lorakit-quantized
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { Tensor, noGrad } from '@lorakit/core';
import { saveSafetensors, tensorRecord } from '@lorakit/core/io';
import { Linear8bit } from '@lorakit/core/nn';
import { AutoModelForCausalLM, saveModel } from '@lorakit/models';
import { quantizeModel, quantizeModel8bit } from '@lorakit/adapters';

const out = process.argv[2] ?? 'conformance/out/lorakit-quantized';
const inputIds = Tensor.fromArray([[330, 284, 844, 264, 908, 539, 9, 79, 328, 200]], 'int64');
for (const [name, quantType, doubleQuant] of [['nf4-dq', 'nf4', true], ['fp4', 'fp4', false]] as const) {
  const model = await AutoModelForCausalLM.fromPretrained('examples/models/tiny-code-llama');
  await quantizeModel(model, { quantType, doubleQuant });
  const dir = join(out, name);
  await saveModel(model, dir);
  const logits = noGrad(() => model.call({ inputIds }).logits);
  await saveSafetensors(join(dir, 'lorakit-logits.safetensors'), new Map([['input_ids', tensorRecord(inputIds, 'I64')], ['logits', tensorRecord(logits, 'F32')]]));
  console.log(`${name}: written`);
}

const int8 = await AutoModelForCausalLM.fromPretrained('examples/models/tiny-code-llama');
quantizeModel8bit(int8);
const records = new Map([['input_ids', tensorRecord(inputIds, 'I64')], ['logits', tensorRecord(noGrad(() => int8.call({ inputIds }).logits), 'F32')]]);
for (const [name, m] of int8.namedModules()) {
  if (!(m instanceof Linear8bit)) continue;
  records.set(`${name}.weight`, tensorRecord(m.weight, 'I8'));
  records.set(`${name}.SCB`, tensorRecord(m.SCB, 'F32'));
}
await mkdir(`${out}-int8`, { recursive: true });
await saveSafetensors(join(`${out}-int8`, 'lorakit-int8.safetensors'), records);
console.log('int8: written');
