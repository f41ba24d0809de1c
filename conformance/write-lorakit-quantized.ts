/**
 * A model quantized by lorakit (quantizeModel) and saved in bitsandbytes'
 * format, for transformers + bitsandbytes to load (check_lorakit_quantized.py).
 *   tsx conformance/write-lorakit-quantized.ts conformance/out/lorakit-quantized
 */
import { join } from 'node:path';
import { Tensor, noGrad } from '@lorakit/core';
import { saveSafetensors, tensorRecord } from '@lorakit/core/io';
import { AutoModelForCausalLM, saveModel } from '@lorakit/models';
import { quantizeModel } from '@lorakit/adapters';

const out = process.argv[2] ?? 'conformance/out/lorakit-quantized';
for (const [name, quantType, doubleQuant] of [['nf4-dq', 'nf4', true], ['fp4', 'fp4', false]] as const) {
  const model = await AutoModelForCausalLM.fromPretrained('examples/models/tiny-code-llama');
  await quantizeModel(model, { quantType, doubleQuant });
  const dir = join(out, name);
  await saveModel(model, dir);
  const inputIds = Tensor.fromArray([[330, 284, 844, 264, 908, 539, 9, 79, 328, 200]], 'int64');
  const logits = noGrad(() => model.call({ inputIds }).logits);
  await saveSafetensors(join(dir, 'lorakit-logits.safetensors'), new Map([['input_ids', tensorRecord(inputIds, 'I64')], ['logits', tensorRecord(logits, 'F32')]]));
  console.log(`${name}: written`);
}
