/** One process: load a checkpoint, quantize its linear layers to NF4 (double quant); prints JSON figures. */
import { Linear4bit } from '@lorakit/core';
import { AutoModelForCausalLM } from '@lorakit/models';
import { quantizeModel } from '@lorakit/adapters';

const dir = process.argv[2];
const model = await AutoModelForCausalLM.fromPretrained(dir);
const start = performance.now();
await quantizeModel(model, { quantType: 'nf4', blockSize: 64, doubleQuant: true, threads: Number(process.argv[3] ?? 0) || undefined });
const seconds = (performance.now() - start) / 1000;
const layers = model.modules().filter((m): m is Linear4bit => m instanceof Linear4bit);
const weights = layers.reduce((n, l) => n + l.inFeatures * l.outFeatures, 0);
const bytes = layers.reduce((n, l) => n + l.weight.numel + l.double!.quantized.length + 4 * l.double!.nestedAbsmax.length, 0);
console.log(JSON.stringify({ seconds, weights, bytesPerWeight: bytes / weights }));
