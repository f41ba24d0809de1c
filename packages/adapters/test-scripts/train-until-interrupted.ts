/** A long LoRA run for the SIGINT test: prints "ready" once training is under way. */
import { manualSeed } from '@lorakit/core';
import { AutoModelForCausalLM, AutoTokenizer, Trainer, loadDataset } from '@lorakit/models';
import { LoraConfig, getPeftModel } from '@lorakit/adapters';
import { TINY_CODE_LLAMA, REPO } from '../src/testing.ts';

const outputDir = process.argv[2];
const tokenizer = await AutoTokenizer.fromPretrained(TINY_CODE_LLAMA);
manualSeed(0);
const peft = getPeftModel(await AutoModelForCausalLM.fromPretrained(TINY_CODE_LLAMA), new LoraConfig({ targetModules: ['q_proj', 'v_proj'], loraDropout: 0.1 }));
const train = (await loadDataset(`${REPO}examples/data/house-style/train.jsonl`, tokenizer, { maxLength: 48 })).slice(0, 24);
const trainer = new Trainer(peft, { outputDir, train, padTokenId: 1, maxSteps: 40, batchSize: 2, learningRate: 2e-4, loggingSteps: 1, progress: 'lines', onLog: (e) => e.step === 2 && console.log('ready') });
const result = await trainer.train();
console.log(JSON.stringify({ interrupted: result.interrupted, step: result.globalStep, checkpoint: result.checkpoints.at(-1) }));
