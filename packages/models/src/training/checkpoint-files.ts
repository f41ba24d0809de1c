/**
 * Training checkpoints: out/checkpoint-N/ holds everything an exact resume needs.
 *
 *   adapter_config.json, adapter_model.safetensors   the adapter, in PEFT's format (when the model has one)
 *   trainable.safetensors    every trainable parameter under its in-memory name (what resume loads)
 *   optimizer.safetensors    the optimizer's moments, state.<i>.<buffer>
 *   trainer_state.json       step, data position, RNG, scheduler, optimizer steps, log history,
 *                            and the run's fingerprint; written last: a folder without it is incomplete
 *
 * The folder is written under a temporary name and renamed into place, so a
 * crash mid-save leaves the previous checkpoint as it was.
 */
import { mkdir, readdir, rename, rm, stat, writeFile, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { Tensor } from '@lorakit/core';
import { FileFormatError, SafetensorsFile, saveSafetensors, tensorRecord, fsyncDirectory } from '@lorakit/core/io';

export const STATE_FILE = 'trainer_state.json';
export const TRAINABLE_FILE = 'trainable.safetensors';
export const OPTIMIZER_FILE = 'optimizer.safetensors';

export interface CheckpointContents {
  state: Record<string, unknown>;
  trainable: Map<string, Tensor>;
  optimizer: Map<string, Tensor>;
  /** Writes extra files (the PEFT adapter) into the folder. */
  writeExtra?: (dir: string) => Promise<void>;
}

const STEP = /^checkpoint-(\d+)$/;

export async function writeCheckpoint(outputDir: string, step: number, contents: CheckpointContents): Promise<string> {
  await mkdir(outputDir, { recursive: true });
  const final = join(outputDir, `checkpoint-${step}`);
  const temp = join(outputDir, `.checkpoint-${step}.tmp-${randomBytes(4).toString('hex')}`);
  try {
    await mkdir(temp);
    await contents.writeExtra?.(temp);
    await saveSafetensors(join(temp, TRAINABLE_FILE), new Map([...contents.trainable].map(([k, t]) => [k, tensorRecord(t, 'F32')])), { format: 'lorakit' });
    await saveSafetensors(join(temp, OPTIMIZER_FILE), new Map([...contents.optimizer].map(([k, t]) => [k, tensorRecord(t, 'F32')])), { format: 'lorakit' });
    await writeFile(join(temp, STATE_FILE), `${JSON.stringify(contents.state, null, 2)}\n`);
    const previous = await stat(final).then(() => `${temp}.previous`, () => null);
    if (previous) await rename(final, previous);
    await rename(temp, final);
    if (previous) await rm(previous, { recursive: true, force: true });
    await fsyncDirectory(outputDir);
    return final;
  } catch (error) {
    await rm(temp, { recursive: true, force: true });
    throw error;
  }
}

export interface FoundCheckpoint {
  dir: string;
  step: number;
}

/** Complete checkpoints (trainer_state.json present), oldest first; incomplete ones are named in `skipped`. */
export async function listCheckpoints(outputDir: string): Promise<{ complete: FoundCheckpoint[]; skipped: string[] }> {
  const entries = await readdir(outputDir).catch(() => [] as string[]);
  const complete: FoundCheckpoint[] = [];
  const skipped: string[] = [];
  for (const name of entries) {
    const match = STEP.exec(name);
    if (!match) continue;
    const dir = join(outputDir, name);
    if (await isComplete(dir)) complete.push({ dir, step: Number(match[1]) });
    else skipped.push(dir);
  }
  return { complete: complete.sort((a, b) => a.step - b.step), skipped };
}

async function isComplete(dir: string): Promise<boolean> {
  const files = await readdir(dir).catch(() => [] as string[]);
  return [STATE_FILE, TRAINABLE_FILE, OPTIMIZER_FILE].every((f) => files.includes(f));
}

/** Delete the oldest complete checkpoints beyond `keep` (never the newest). */
export async function rotateCheckpoints(outputDir: string, keep: number): Promise<string[]> {
  const { complete } = await listCheckpoints(outputDir);
  const doomed = complete.slice(0, Math.max(0, complete.length - Math.max(1, keep)));
  for (const c of doomed) await rm(c.dir, { recursive: true, force: true });
  return doomed.map((c) => c.dir);
}

async function readTensors(path: string): Promise<Map<string, Tensor>> {
  const file = await SafetensorsFile.open(path);
  try {
    const tensors = new Map<string, Tensor>();
    for (const name of file.names()) tensors.set(name, await file.read(name));
    return tensors;
  } finally {
    await file.close();
  }
}

export async function readCheckpoint(dir: string): Promise<Omit<CheckpointContents, 'writeExtra'>> {
  if (!(await isComplete(dir))) {
    throw new FileFormatError('IncompleteCheckpoint', dir, `not a complete checkpoint (it needs ${STATE_FILE}, ${TRAINABLE_FILE} and ${OPTIMIZER_FILE}); HF Trainer folders with optimizer.pt or rng_state.pth are pickles, which lorakit never loads`);
  }
  let state: Record<string, unknown>;
  try {
    state = JSON.parse(await readFile(join(dir, STATE_FILE), 'utf8'));
  } catch (error) {
    throw new FileFormatError('IncompleteCheckpoint', join(dir, STATE_FILE), `unreadable: ${(error as Error).message}`);
  }
  return { state, trainable: await readTensors(join(dir, TRAINABLE_FILE)), optimizer: await readTensors(join(dir, OPTIMIZER_FILE)) };
}
