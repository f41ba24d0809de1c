/**
 * The four packages as a user gets them: packed by pnpm, installed with npm
 * into a new folder outside the workspace, and used there with plain `node`,
 * `tsc` and the `lora` bin, with no tsx and no loader flags.
 */
import test from 'ava';
import { execFile } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, readFile, readdir, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = fileURLToPath(new URL('../', import.meta.url));
const CONSUMER = `${REPO}packaging/consumer`;
const PACKAGES = ['core', 'models', 'adapters', 'cli'];
const MODEL = `${REPO}examples/models/tiny-code-llama`;
const TRAIN = `${REPO}examples/data/house-style/train.jsonl`;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function run(file: string, args: string[], cwd: string, env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve) => {
    execFile(file, args, { cwd, env: { ...process.env, ...env }, maxBuffer: 64 << 20 }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout, stderr });
    });
  });
}

async function ok(file: string, args: string[], cwd: string, env: Record<string, string> = {}): Promise<string> {
  const result = await run(file, args, cwd, env);
  if (result.code !== 0) throw new Error(`${file} ${args.join(' ')} failed in ${cwd}:\n${result.stdout}\n${result.stderr}`);
  return result.stdout;
}

/** Builds, packs and installs the packages into a new folder; returns it with the tarballs. */
async function install(): Promise<{ dir: string; tarballs: string[] }> {
  const root = await mkdtemp(join(tmpdir(), 'lorakit-install-'));
  await ok('npm', ['run', 'build'], REPO);
  const tarballs: string[] = [];
  for (const name of PACKAGES) {
    await ok('npx', ['-y', 'pnpm@12.4.2', 'pack', '--pack-destination', `${root}/tarballs`], `${REPO}packages/${name}`);
    tarballs.push(`${root}/tarballs/lorakit-${name}-0.1.0.tgz`);
  }
  const dir = `${root}/app`;
  await mkdir(dir);
  const dependencies = Object.fromEntries(PACKAGES.map((name, i) => [`@lorakit/${name}`, `file:${tarballs[i]}`]));
  await writeFile(`${dir}/package.json`, JSON.stringify({ name: 'app', private: true, type: 'module', dependencies: { ...dependencies, '@types/node': '20.19.43' } }, null, 2));
  for (const file of await readdir(CONSUMER)) await copyFile(`${CONSUMER}/${file}`, `${dir}/${file}`);
  // onnxruntime-node's install script would fetch CUDA libraries: lorakit runs on the CPU binaries it ships
  await ok('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline'], dir, { ONNXRUNTIME_NODE_INSTALL: 'skip' });
  return { dir, tarballs };
}

const installed = install();
const TSC = `${REPO}node_modules/.bin/tsc`;

test('the tarballs hold the JavaScript, declarations, source maps and sources, and no tests, fixtures or source-only loaders', async (t) => {
  const { tarballs } = await installed;
  for (const tarball of tarballs) {
    const files = (await ok('tar', ['tzf', tarball], REPO)).trim().split('\n');
    t.log(`${tarball.split('/').pop()}: ${((await stat(tarball)).size / 1024).toFixed(0)} KiB, ${files.length} files`);
    for (const needed of ['package/package.json', 'package/dist/index.js', 'package/dist/index.d.ts', 'package/dist/index.js.map', 'package/src/index.ts']) t.true(files.includes(needed), `${tarball}: ${needed}`);
    t.deepEqual(files.filter((f) => /\.test\.|fixtures\/|\/testing\.ts$|\.tsbuildinfo$|benchmarks\/|worker-bootstrap/.test(f)), [], tarball);
  }
});

test('plain node fine-tunes, saves and merges with the installed packages, exactly as the sources do', async (t) => {
  const { dir } = await installed;
  const fromTarballs = await run(process.execPath, ['finetune.mjs', MODEL, TRAIN, `${dir}/out`], dir);
  t.is(fromTarballs.code, 0, fromTarballs.stderr);
  const reference = await mkdtemp(join(tmpdir(), 'lorakit-source-'));
  const fromSource = await run(process.execPath, ['--import=tsx', '--conditions=lorakit-source', `${CONSUMER}/finetune.mjs`, MODEL, TRAIN, reference], REPO);
  t.is(fromSource.code, 0, fromSource.stderr);

  t.is(JSON.parse(fromTarballs.stdout).steps, 3);
  const log = async (out: string) => (await readFile(`${out}/run/training_log.jsonl`, 'utf8')).trim().split('\n').map((line) => JSON.parse(line) as { loss: number; grad_norm: number });
  const [installedLog, sourceLog] = [await log(`${dir}/out`), await log(reference)];
  t.is(installedLog.length, 3);
  t.deepEqual(installedLog.map((e) => [e.loss, e.grad_norm]), sourceLog.map((e) => [e.loss, e.grad_norm]));
  for (const file of ['adapter/adapter_model.safetensors', 'adapter/adapter_config.json', 'merged/model.safetensors', 'merged/config.json']) {
    t.deepEqual(await readFile(`${dir}/out/${file}`), await readFile(`${reference}/${file}`), file);
  }
});

test('tsc accepts a TypeScript consumer against the installed declarations, without skipLibCheck', async (t) => {
  const { dir } = await installed;
  const result = await run(TSC, ['-p', 'tsconfig.json'], dir);
  t.is(result.code, 0, result.stdout);
});

test('tsc rejects each wrong line of a consumer: the declarations carry real types, not any', async (t) => {
  const { dir } = await installed;
  const result = await run(TSC, ['-p', 'tsconfig.mistyped.json'], dir);
  const lines = [...result.stdout.matchAll(/^mistyped\.ts\((\d+),\d+\): error/gm)].map((m) => Number(m[1]));
  const wrong = (await readFile(`${dir}/mistyped.ts`, 'utf8')).split('\n').flatMap((line, i) => (line.startsWith('export const') ? [i + 1] : []));
  t.deepEqual(lines, wrong, result.stdout);
  t.notRegex(result.stdout, /node_modules\//);
});

test('the installed lora bin prints the help the repository prints', async (t) => {
  const { dir } = await installed;
  const help = await ok(`${dir}/node_modules/.bin/lora`, ['--help'], dir);
  t.regex(help, /lora merge <model>/);
  t.is(help, await ok(process.execPath, [`${REPO}packages/cli/bin/lora.mjs`, '--help'], REPO));
});
