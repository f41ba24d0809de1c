/**
 * Fine-tune tiny-code-llama with LoRA on q_proj and v_proj to write Python in
 * a house style (a "Return the ..." docstring, a `result` variable), then
 * evaluate, save the adapter, and compare generations before and after.
 *
 *   npx tsx examples/finetune.ts [outputDir]
 */
import { manualSeed } from '@lorakit/core';
import { AutoModelForCausalLM, AutoTokenizer, Trainer, generate, loadDataset } from '@lorakit/models';
import { LoraConfig, getPeftModel } from '@lorakit/adapters';

const MODEL = 'examples/models/tiny-code-llama';
const DATA = 'examples/data/house-style';
const outputDir = process.argv[2] ?? 'out/finetune';

manualSeed(0);
const tokenizer = await AutoTokenizer.fromPretrained(MODEL);
const model = await AutoModelForCausalLM.fromPretrained(MODEL);
const peft = getPeftModel(model, new LoraConfig({ r: 8, loraAlpha: 16, targetModules: ['q_proj', 'v_proj'], loraDropout: 0.05 }));
peft.printTrainableParameters();

const train = await loadDataset(`${DATA}/train.jsonl`, tokenizer, { maxLength: 64 });
const evalSet = await loadDataset(`${DATA}/eval.jsonl`, tokenizer, { maxLength: 64 });
const prompts = ['def add(a, b):\n', 'def area_of_circle(radius):\n'];
const complete = () => prompts.map((p) => tokenizer.decode(generate(peft, [tokenizer.encode(p)], { maxNewTokens: 24, eosTokenId: tokenizer.eosTokenId })[0]));

const trainer = new Trainer(peft, {
  outputDir, train, eval: evalSet, padTokenId: tokenizer.padTokenId ?? 0,
  epochs: 4, batchSize: 8, learningRate: 3e-3, warmupSteps: 5, lrScheduler: 'cosine', loggingSteps: 5, evalSteps: 19, saveTotalLimit: 2,
});
const before = complete();
const evalBefore = trainer.evaluate();
const result = await trainer.train();
console.log(`\nheld-out loss ${evalBefore.toFixed(3)} -> ${result.evalLoss!.toFixed(3)} in ${result.globalStep} steps (${result.secondsElapsed.toFixed(1)} s, peak RSS ${(result.peakRssBytes / 2 ** 20).toFixed(0)} MiB)`);
await peft.savePretrained(`${outputDir}/adapter`);
prompts.forEach((p, i) => {
  console.log(`\n--- ${JSON.stringify(p)} before:\n${before[i]}\n--- after:\n${complete()[i]}`);
});
