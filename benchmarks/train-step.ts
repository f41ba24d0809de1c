/**
 * One process, one model: LoRA r=16 on every linear layer, optimizer steps of
 * 4x512 tokens; prints {stepMs, tokensPerSecond, peakRssBytes} as JSON.
 *   tsx benchmarks/train-step.ts <model dir> [steps] [--quantize]   (--quantize: NF4 with double quantization after loading)
 */
import { AdamW, Tensor, manualSeed } from '@lorakit/core';
import { AutoModelForCausalLM } from '@lorakit/models';
import { LoraConfig, getPeftModel, quantizeModel } from '@lorakit/adapters';
import { median } from './stats.ts';

const [dir, stepsArg, mode] = process.argv.slice(2);
const steps = Number(stepsArg ?? 3);
manualSeed(0);
const model = await AutoModelForCausalLM.fromPretrained(dir); // a 4-bit checkpoint loads as Linear4bit layers
if (mode === '--quantize') await quantizeModel(model, { quantType: 'nf4', doubleQuant: true });
global.gc?.();
const loadedRssBytes = process.memoryUsage().rss;
const peft = getPeftModel(model, new LoraConfig({ r: 16, loraAlpha: 32, targetModules: 'all-linear' }));
const optimizer = new AdamW(peft.trainableParameters().map(([, p]) => p), { lr: 1e-4 });
const vocab = model.config.vocab_size;
const inputIds = new Tensor(Int32Array.from({ length: 4 * 512 }, (_, i) => (i * 7919 + 13) % vocab), [4, 512]);
peft.train();
const step = () => {
  const { loss } = peft.call({ inputIds, labels: inputIds });
  loss!.backward();
  optimizer.step();
  optimizer.zeroGrad();
};
step(); // warm-up: sessions are created here
const times: number[] = [];
for (let i = 0; i < steps; i++) {
  const start = performance.now();
  step();
  times.push(performance.now() - start);
}
const stepMs = median(times);
console.log(JSON.stringify({ stepMs, tokensPerSecond: 2048 / (stepMs / 1000), loadedRssBytes, peakRssBytes: process.resourceUsage().maxRSS * 1024, trainable: peft.numParameters({ trainableOnly: true }) }));
