/**
 * Training LoRA: PEFT's AdamW trajectory, exact resume, Ctrl-C, a failed save
 * and checkpoint rotation.
 * NOTE: serial, because training draws from the global generator (dropout, init), as in PyTorch.
 */
import test from 'ava';
import { spawn } from 'node:child_process';
import { mkdtemp, readdir, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { manualSeed } from '@lorakit/core';
import { AdamW } from '@lorakit/core/optim';
import { SafetensorsFile } from '@lorakit/core/io';
import { AutoModelForCausalLM, AutoTokenizer, Trainer, listCheckpoints, loadDataset, type TrainerOptions } from '@lorakit/models';
import { LoraConfig } from './config.ts';
import { PeftModel, getPeftModel } from './peft-model.ts';
import { adapterStateDict } from './adapter-io.ts';
import { PEFT_FIXTURES, REPO, TINY_CODE_LLAMA, relativeError } from './testing.ts';

const TRAJECTORY = `${PEFT_FIXTURES}/codellama_train_trajectory`;
const tokenizer = await AutoTokenizer.fromPretrained(TINY_CODE_LLAMA);
const train = (await loadDataset(`${REPO}examples/data/house-style/train.jsonl`, tokenizer, { maxLength: 48 })).slice(0, 24);
const tmp = () => mkdtemp(join(tmpdir(), 'lorakit-train-'));

test.serial('six AdamW steps reproduce PEFT\'s losses (1e-4) and final adapter (1e-3 relative)', async (t) => {
  const peft = await PeftModel.fromPretrained(await AutoModelForCausalLM.fromPretrained(TINY_CODE_LLAMA), `${TRAJECTORY}/adapter_init`, { isTrainable: true });
  const meta = JSON.parse(await readFile(`${TRAJECTORY}/meta.json`, 'utf8')) as { losses: number[]; lr: number; betas: [number, number]; eps: number; weight_decay: number };
  const optimizer = new AdamW(peft.trainableParameters().map(([, p]) => p), { lr: meta.lr, betas: meta.betas, eps: meta.eps, weightDecay: meta.weight_decay });
  const batches = await SafetensorsFile.open(`${TRAJECTORY}/batches.safetensors`);
  for (let i = 0; i < 6; i++) {
    const [inputIds, attentionMask, labels] = await Promise.all(['input_ids', 'attention_mask', 'labels'].map((n) => batches.read(`b${i}_${n}`)));
    const { loss } = peft.call({ inputIds, attentionMask, labels });
    loss!.backward();
    optimizer.step();
    optimizer.zeroGrad();
    t.true(Math.abs(loss!.item() - meta.losses[i]) <= 1e-4, `step ${i + 1}: ${loss!.item()} vs ${meta.losses[i]}`);
  }
  await batches.close();
  const final = await SafetensorsFile.open(`${TRAJECTORY}/adapter_final/adapter_model.safetensors`);
  const mine = adapterStateDict(peft, 'default');
  for (const name of final.names()) t.true(relativeError(mine.get(name)!, await final.read(name)) <= 1e-3, name);
  await final.close();
});

async function lora(): Promise<PeftModel> {
  manualSeed(0);
  return getPeftModel(await AutoModelForCausalLM.fromPretrained(TINY_CODE_LLAMA), new LoraConfig({ targetModules: ['q_proj', 'v_proj'], loraDropout: 0.1 }));
}

const options = (outputDir: string, extra: Partial<TrainerOptions> = {}): TrainerOptions => ({
  outputDir, train, padTokenId: 1, maxSteps: 6, batchSize: 4, learningRate: 1e-3, loggingSteps: 1, progress: 'none', handleInterrupts: false, ...extra,
});

const snapshot = (peft: PeftModel) => peft.trainableParameters().map(([n, p]) => [n, Array.from(p.values)] as const);
const losses = async (dir: string) => (await readFile(join(dir, 'training_log.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l)).filter((e) => 'loss' in e).map((e) => [e.step, e.loss]);

test.serial('6 steps straight and 3 steps + resume + 3 steps are bit-identical (weights and losses, with dropout)', async (t) => {
  const straightDir = await tmp();
  const straight = await lora();
  await new Trainer(straight, options(straightDir)).train();

  const splitDir = await tmp();
  await new Trainer(await lora(), options(splitDir, { saveSteps: 3 })).train();
  const resumed = await lora();
  const result = await new Trainer(resumed, options(await tmp(), { resumeFromCheckpoint: join(splitDir, 'checkpoint-3') })).train();
  t.is(result.globalStep, 6);
  t.deepEqual(snapshot(resumed), snapshot(straight));
  const resumedLosses = (await losses(result.checkpoints[0].replace(/checkpoint-6$/, ''))).filter(([step]) => step > 3);
  t.deepEqual(resumedLosses, (await losses(straightDir)).filter(([step]) => step > 3));
});

test.serial('a checkpoint holds the PEFT adapter, and resuming with other settings is refused', async (t) => {
  const dir = await tmp();
  await new Trainer(await lora(), options(dir, { maxSteps: 2 })).train();
  const files = await readdir(join(dir, 'checkpoint-2'));
  t.true(['adapter_config.json', 'adapter_model.safetensors', 'trainer_state.json', 'optimizer.safetensors', 'trainable.safetensors'].every((f) => files.includes(f)));
  const error = await t.throwsAsync(new Trainer(await lora(), options(dir, { maxSteps: 4, learningRate: 5e-4, resumeFromCheckpoint: true })).train());
  t.regex(error!.message, /comes from a different run \(learning_rate, total_steps changed\)/);
  await t.throwsAsync(new Trainer(await lora(), options(await tmp(), { resumeFromCheckpoint: true })).train(), { message: /can't find a valid checkpoint/ });
});

test.serial('only the last saveTotalLimit checkpoints are kept', async (t) => {
  const dir = await tmp();
  await new Trainer(await lora(), options(dir, { maxSteps: 4, saveSteps: 1, saveTotalLimit: 2 })).train();
  t.deepEqual((await listCheckpoints(dir)).complete.map((c) => c.step), [3, 4]);
});

test.serial('a save that fails leaves the previous checkpoint intact and no partial folder', async (t) => {
  const dir = await tmp();
  const peft = await lora();
  let saves = 0;
  const original = peft.savePretrained.bind(peft);
  peft.savePretrained = async (d: string) => {
    if (++saves === 2) throw new Error('disk full');
    await original(d);
  };
  await t.throwsAsync(new Trainer(peft, options(dir, { maxSteps: 4, saveSteps: 2 })).train(), { message: 'disk full' });
  const { complete, skipped } = await listCheckpoints(dir);
  t.deepEqual(complete.map((c) => c.step), [2]);
  t.deepEqual(skipped, []);
  t.deepEqual((await readdir(dir)).filter((f) => f.includes('.tmp-')), []);
});

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  test.serial(`${signal} finishes the step, saves a checkpoint and exits cleanly; the run resumes from it`, async (t) => {
    const dir = await tmp();
    const child = spawn(process.execPath, ['--import=tsx', '--conditions=lorakit-source', `${REPO}packages/adapters/test-scripts/train-until-interrupted.ts`, dir], { cwd: REPO, env: { ...process.env, LORAKIT_THREADS: '1' } });
    // the child trains with maxSteps 40, batch 2, lr 2e-4 and is interrupted after step 2
    let stdout = '';
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    const exitCode = await new Promise<number | null>((resolve) => {
      let sent = false;
      child.stdout.on('data', (d) => {
        stdout += d;
        if (!sent && stdout.includes('ready')) sent = child.kill(signal);
      });
      child.on('exit', (code) => resolve(code));
    });
    t.is(exitCode, 0, stderr);
    t.regex(stderr, /interrupted: finishing this step and saving a checkpoint/);
    const summary = JSON.parse(stdout.trim().split('\n').at(-1)!) as { interrupted: boolean; step: number; checkpoint: string };
    t.true(summary.interrupted);
    const { complete } = await listCheckpoints(dir);
    t.is(complete.at(-1)!.step, summary.step);
    const resumed = await new Trainer(await lora(), { ...options(dir), maxSteps: 40, batchSize: 2, learningRate: 2e-4, resumeFromCheckpoint: true }).train();
    t.is(resumed.globalStep, 40);
    t.false(resumed.interrupted);
  });
}
