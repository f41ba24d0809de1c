// A user's fine-tune script in plain JavaScript, as `node finetune.mjs` runs it
// against the installed packages: LoRA on q_proj and v_proj, three training
// steps, the adapter saved in PEFT's format and merged into a new checkpoint.
//
//   node finetune.mjs <model folder> <train.jsonl> <output folder>
import { manualSeed } from '@lorakit/core';
import { AutoModelForCausalLM, AutoTokenizer, Trainer, loadDataset } from '@lorakit/models';
import { LoraConfig, getPeftModel, mergeCheckpoint } from '@lorakit/adapters';

const [modelDir, trainFile, out] = process.argv.slice(2);

manualSeed(0);
const tokenizer = await AutoTokenizer.fromPretrained(modelDir);
const model = await AutoModelForCausalLM.fromPretrained(modelDir);
const peft = getPeftModel(model, new LoraConfig({ r: 8, loraAlpha: 16, targetModules: ['q_proj', 'v_proj'], loraDropout: 0.05 }));
const train = await loadDataset(trainFile, tokenizer, { maxLength: 64 });
const trainer = new Trainer(peft, {
  outputDir: `${out}/run`, train, padTokenId: tokenizer.padTokenId ?? 0,
  maxSteps: 3, batchSize: 4, learningRate: 3e-3, loggingSteps: 1, progress: 'none',
});
const result = await trainer.train();
await peft.savePretrained(`${out}/adapter`);
const merged = await mergeCheckpoint({ model: modelDir, adapters: [{ dir: `${out}/adapter` }], out: `${out}/merged` });
console.log(JSON.stringify({ steps: result.globalStep, trainLoss: result.trainLoss, merged: merged.files }));
