/**
 * lorakit against PyTorch + PEFT (+ bitsandbytes) on this machine, in one run:
 * each task in its own process, the two sides alternating, --reps rounds (3).
 * Writes benchmarks/RESULTS.md (medians, the ratio lorakit / PyTorch, and
 * lorakit's fraction of the machine's limit) and benchmarks/results.png.
 *
 *   npm run bench:compare [-- --reps 5] [-- --only 'merge|step, SmolLM2']   (tasks whose name contains one of the parts)
 *   npm run bench:compare -- --report benchmarks/out/compare-raw.json   (the report again, from a run's figures)
 *
 * PyTorch runs float32 on 2 threads from the conformance suite's virtual
 * environment (made on first use).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import type { LlamaFamilyConfig } from '@lorakit/models';
import { describeMachine } from '../machine.ts';
import { median } from '../stats.ts';
import { longTexts, QWEN3_0_6B_SHAPES, randomAdapter, randomCheckpoint, SMOLLM2_SHAPES, TINYLLAMA_SHAPES, withTokenizer } from '../checkpoints.ts';
import { diskLimit, flopsPerToken, memoryBandwidth } from './limits.ts';

const OUT = 'benchmarks/out';
const PYTHON = 'conformance/.venv/bin/python';
const argument = (name: string) => process.argv[process.argv.indexOf(name) + 1];
const reps = process.argv.includes('--reps') ? Number(argument('--reps')) : 3;
const only = process.argv.includes('--only') ? argument('--only') : undefined;
const report = process.argv.includes('--report') ? argument('--report') : undefined;

type Figures = Record<string, number>;
/** pytorch-bf16: PyTorch's training step under torch.autocast(bfloat16), what a user gets with one flag. */
type Side = 'lorakit' | 'pytorch' | 'pytorch-bf16';
const SIDES: Side[] = ['lorakit', 'pytorch', 'pytorch-bf16'];

/** One task: the command line of each side, and how each round's limit is measured. */
interface Task {
  name: string;
  lorakit: string[];
  pytorch: string[];
  pytorchBf16?: string[];
  /** Runs before each round's pair (a merge's output folder must not exist). */
  before?: () => void;
  /** Seconds the machine needs at best, measured or computed for this round. */
  limit?: () => Figures;
}

/** A row of the results: one figure of a task, as seconds (lower is better). */
interface Row {
  task: string;
  label: string;
  seconds: (f: Figures) => number;
  limitSeconds?: (limit: Figures) => number;
  unit: 'seconds' | 'tokens/s';
  /** tokens per second <-> seconds per token */
  tokens?: number;
}

/**
 * One task in its own process, under /usr/bin/time for the peak RSS: a child's own getrusage would report at
 * least this driver's RSS, which it inherits at fork. `sync` first, so that neither side pays for the disk
 * writing out what the other left in the page cache.
 */
function run(side: Side, args: string[]): Figures {
  const machineBefore = quietMachine();
  const [command, prefix] = side === 'lorakit' ? [process.execPath, ['--import=tsx', '--expose-gc', 'benchmarks/compare/lorakit-tasks.ts']] : [PYTHON, ['benchmarks/compare/torch_tasks.py']];
  execFileSync('sync');
  const result = spawnSync('/usr/bin/time', ['-f', 'maxrss_kb=%M', command, ...prefix, ...args], { encoding: 'utf8', maxBuffer: 1 << 26, env: { ...process.env, TRANSFORMERS_VERBOSITY: 'error', TQDM_DISABLE: '1' } });
  if (result.status !== 0) throw new Error(`${side} ${args.join(' ')} failed:\n${result.stderr.slice(-2000)}`);
  const peakRssBytes = Number(/maxrss_kb=(\d+)/.exec(result.stderr)![1]) * 1024;
  return { ...JSON.parse(result.stdout.trim().split('\n').at(-1)!), peakRssBytes, ...machineBefore };
}

/** The share of every core's time spent outside idle over `ms`, from /proc/stat. */
function busyShare(ms: number): number {
  const sample = () => readFileSync('/proc/stat', 'utf8').split('\n')[0].split(/\s+/).slice(1).map(Number); // user nice system idle iowait ...
  const before = sample();
  execFileSync('sleep', [String(ms / 1000)]);
  const delta = sample().map((v, i) => v - before[i]);
  const total = delta.reduce((a, b) => a + b, 0);
  return total === 0 ? 0 : 1 - (delta[3] + delta[4]) / total;
}

/** Above this share of the CPU busy with other work just before a run, the run does not count. */
const BUSY = 0.1;

/**
 * Waits (up to a minute) until nothing else keeps the CPU busy, and returns what it saw: the 1-minute load
 * average (which still counts the previous task for a while) and the busy share over the last 2 s, which this
 * idle driver does not add to. A run that started on a busy machine is recorded as such, and refused below.
 */
function quietMachine(): Figures {
  let busy = busyShare(2000);
  for (let waited = 0; busy >= BUSY && waited < 60; waited += 10) {
    process.stderr.write(`the machine is busy (${(100 * busy).toFixed(0)}% of the CPU): waiting\n`);
    execFileSync('sleep', ['8']);
    busy = busyShare(2000);
  }
  return { loadAverageBefore: Number(readFileSync('/proc/loadavg', 'utf8').split(' ')[0]), busyBefore: busy };
}

function ensurePython(): void {
  const check = spawnSync(PYTHON, ['-c', 'import peft, transformers, torch, bitsandbytes, matplotlib']);
  if (check.status === 0) return;
  execFileSync('python3', ['-m', 'venv', 'conformance/.venv'], { stdio: 'inherit' });
  // pip warns about every package index it cannot reach: its output shows only in the error if it fails.
  execFileSync(PYTHON, ['-m', 'pip', 'install', '-r', 'conformance/requirements.txt'], { stdio: 'pipe', maxBuffer: 1 << 26 });
}

const configOf = (dir: string) => JSON.parse(readFileSync(`${dir}/config.json`, 'utf8')) as LlamaFamilyConfig;
const weightsBytes = (dir: string) => statSync(`${dir}/model.safetensors`).size;

interface Measured {
  date: string;
  commit: string;
  reps: number;
  bandwidth: number;
  results: Record<string, Record<Side | 'limit', Figures[]>>;
}
const previous: Measured | undefined = report === undefined ? undefined : JSON.parse(readFileSync(report, 'utf8'));

ensurePython();
const machine = describeMachine();
const bandwidth = previous?.bandwidth ?? memoryBandwidth();
const peak = machine.peakGflops * 1e9;
const tiny = 'examples/models/tiny-code-llama';
const smol = await randomCheckpoint(`${OUT}/smollm2-135m-random`, SMOLLM2_SHAPES);
const large = await randomCheckpoint(`${OUT}/tinyllama-1.1b-random`, TINYLLAMA_SHAPES);
const adapters = { smol: await randomAdapter(`${OUT}/smollm2-lora-r16`, SMOLLM2_SHAPES, 16), large: await randomAdapter(`${OUT}/tinyllama-lora-r16`, TINYLLAMA_SHAPES, 16) };
const qwen3 = await randomCheckpoint(`${OUT}/qwen3-0.6b-random`, QWEN3_0_6B_SHAPES);

/**
 * The models whose training steps, forwards and greedy generation are compared: `batch` sequences of `sequence`
 * tokens per step and forward, a 16-token prompt and `newTokens` greedy tokens. Qwen3-0.6B's shapes (28 layers,
 * a 151936-token head) run on 1x256 and 32 new tokens: at 4x512 a lorakit step alone would take minutes on 2 cores.
 */
const models: Record<string, { dir: string; batch: number; sequence: number; newTokens: number }> = {
  'tiny-code-llama': { dir: tiny, batch: 4, sequence: 512, newTokens: 64 },
  'SmolLM2-135M shapes': { dir: smol, batch: 4, sequence: 512, newTokens: 64 },
  'Qwen3-0.6B shapes': { dir: qwen3, batch: 1, sequence: 256, newTokens: 32 },
};

const tasks: Task[] = [];
const rows: Row[] = [];
for (const [name, { dir, batch, sequence, newTokens }] of Object.entries(models)) {
  const tokens = batch * sequence;
  const shape = ['--tokens', `${batch}x${sequence}`, '--new-tokens', String(newTokens)];
  const flops = flopsPerToken(configOf(dir), sequence, 16);
  const stepLimit = () => ({ seconds: ((flops.forward + flops.backward) * tokens) / peak });
  for (const base of ['float32', 'qlora', 'int8'] as const) {
    // The 8-bit base: PyTorch's side is bitsandbytes' LLM.int8 (load_in_8bit); its bf16 column the float base under
    // autocast, the fastest step PyTorch offers here, which the 8-bit base is meant to approach.
    const task = { float32: `LoRA step, ${name}`, qlora: `QLoRA step, ${name}`, int8: `LoRA step on an 8-bit base, ${name}` }[base];
    const args = ['train-step', dir, ...shape, ...{ float32: [], qlora: ['--qlora'], int8: ['--int8'] }[base]];
    const bf16 = base === 'int8' ? ['train-step', dir, ...shape, '--bf16'] : [...args, '--bf16'];
    tasks.push({ name: task, lorakit: args, pytorch: args, pytorchBf16: bf16, limit: stepLimit });
    const detail = base === 'int8' ? '; PyTorch: bitsandbytes load_in_8bit; bf16: the float base' : '';
    rows.push({ task, label: `${task} (r=16, all linear, ${batch}x${sequence}${detail})`, seconds: (f) => f.seconds, limitSeconds: (l) => l.seconds, unit: 'seconds' });
  }
  const inference = `inference, ${name}`;
  const forwardFlops = flopsPerToken(configOf(dir), sequence, 0).forward * tokens;
  const float32Bytes = weightsBytes(dir) * 2; // bf16 on disk, float32 in memory: each greedy token reads them all
  tasks.push({ name: inference, lorakit: ['inference', dir, ...shape], pytorch: ['inference', dir, ...shape], limit: () => ({ forward: forwardFlops / peak }) });
  rows.push({ task: inference, label: `forward, ${name} (${batch}x${sequence})`, seconds: (f) => tokens / f.forwardTokensPerSecond, limitSeconds: (l) => l.forward, unit: 'tokens/s', tokens });
  // Greedy decoding on the decoder graph, float32 and q4 (MatMulNBits); PyTorch float32, and with bf16 weights (half the bytes a token reads).
  for (const dtype of ['fp32', 'q4'] as const) {
    const decode = `greedy decoding${dtype === 'q4' ? ' q4' : ''}, ${name}`;
    const args = ['decode', dir, '--new-tokens', String(newTokens)];
    tasks.push({ name: decode, lorakit: [...args, '--dtype', dtype], pytorch: args, pytorchBf16: [...args, '--bf16'], limit: dtype === 'fp32' ? () => ({ token: float32Bytes / bandwidth }) : undefined });
    const label = dtype === 'q4' ? `greedy decoding, ${name}, lorakit q4 (MatMulNBits)` : `greedy decoding, ${name} (16 + ${newTokens}; limit: the float32 weights read once per token)`;
    rows.push({ task: decode, label, seconds: (f) => 1 / f.greedyTokensPerSecond, limitSeconds: dtype === 'fp32' ? (l) => l.token : undefined, unit: 'tokens/s', tokens: 1 });
  }
}
for (const [name, model, adapter] of [['135M', smol, adapters.smol], ['1.1B', large, adapters.large]] as const) {
  const task = `merge, ${name}`;
  const out = (side: Side) => `${OUT}/merged-${name}-${side}`;
  tasks.push({
    name: task, lorakit: ['merge', model, adapter, out('lorakit')], pytorch: ['merge', model, adapter, out('pytorch')],
    before: () => (['lorakit', 'pytorch'] as const).forEach((side) => rmSync(out(side), { recursive: true, force: true })),
    limit: () => ({ seconds: diskLimit(`${model}/model.safetensors`, `${OUT}/dd.bin`) }),
  });
  rows.push({ task, label: `merge r=16 into ${name} bf16, load to saved`, seconds: (f) => f.seconds, limitSeconds: (l) => l.seconds, unit: 'seconds' });
}
// `lora train` end to end against transformers' Trainer, both float32, on the same long texts cut at 512 tokens.
const texts = longTexts(`${OUT}/long-house-style.jsonl`);
for (const [name, dir] of [['tiny-code-llama', tiny], ['SmolLM2-135M shapes', withTokenizer(smol, `${OUT}/smollm2-135m-random-with-tokenizer`)]] as const) {
  const task = `lora train end to end, ${name}`;
  const args = ['train-cli', dir, texts, '--tokens', '4x512', '--steps', '6'];
  tasks.push({ name: task, lorakit: args, pytorch: args });
  rows.push({ task, label: `${task} (6 steps of 4x512, logging, clipping, linear schedule, dropout 0.05; PyTorch: transformers' Trainer)`, seconds: (f) => 2048 / f.tokensPerSecond, unit: 'tokens/s', tokens: 2048 });
}
const quantize = 'NF4 quantization, 1.1B';
const linearWeights = TINYLLAMA_SHAPES.num_hidden_layers * (2048 * 2048 * 2 + 2048 * 256 * 2 + 3 * 2048 * 5632);
tasks.push({ name: quantize, lorakit: ['quantize', large], pytorch: ['quantize', large], limit: () => ({ seconds: (linearWeights * 4.5) / bandwidth }) }); // read 4 bytes, write about 0.5
rows.push({ task: quantize, label: 'NF4 + double quantization, 1.1B linear weights', seconds: (f) => f.seconds, limitSeconds: (l) => l.seconds, unit: 'seconds' });

function measure(): Measured {
  const commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
  const selected = tasks.filter((t) => only === undefined || only.split('|').some((part) => t.name.includes(part)));
  const results: Measured['results'] = Object.fromEntries(selected.map((t) => [t.name, { lorakit: [], pytorch: [], 'pytorch-bf16': [], limit: [] }]));
  for (let round = 0; round < reps; round++) {
    for (const task of selected) {
      const sides = SIDES.filter((side) => side !== 'pytorch-bf16' || task.pytorchBf16 !== undefined);
      const order = round % 2 === 0 ? sides : [...sides].reverse();
      const r = results[task.name];
      task.before?.();
      execFileSync('sync');
      if (task.limit) r.limit.push(task.limit());
      for (const side of order) {
        r[side].push(run(side, { lorakit: task.lorakit, pytorch: task.pytorch, 'pytorch-bf16': task.pytorchBf16! }[side]));
        task.before?.();
        process.stderr.write(`round ${round + 1}/${reps}: ${task.name}, ${side} done\n`);
      }
    }
    // Every finished round is kept: a run stopped later still renders (--report) from the rounds it completed.
    writeFileSync(`${OUT}/compare-raw.json`, JSON.stringify({ date: new Date().toISOString().slice(0, 10), commit, reps: round + 1, bandwidth, results }));
  }
  return { date: new Date().toISOString().slice(0, 10), commit, reps, bandwidth, results };
}

const measured = previous ?? measure();
writeFileSync(`${OUT}/compare-raw.json`, JSON.stringify(measured));
const results = new Map(Object.entries(measured.results));
const busyRuns = [...results].flatMap(([task, r]) => SIDES.flatMap((side) => (r[side] ?? []).filter((f) => f.busyBefore >= BUSY).map((f) => `${task} (${side}: ${(100 * f.busyBefore).toFixed(0)}% busy, load ${f.loadAverageBefore})`)));
if (busyRuns.length > 0) {
  console.error(`Not publishing: ${busyRuns.length} run(s) started while other work kept the CPU busy: ${busyRuns.join('; ')}. The figures are in ${OUT}/compare-raw.json; run again on a quiet machine.`);
  process.exit(1);
}

// The report: medians per side, lorakit / PyTorch, and lorakit's fraction of the limit (limit / lorakit time).
const MiB = (bytes: number) => `${(bytes / 2 ** 20).toFixed(0)} MiB`;
const show = (row: Row, seconds: number) => (row.unit === 'seconds' ? `${seconds.toFixed(seconds < 1 ? 3 : 2)} s` : `${(row.tokens! / seconds).toFixed(row.tokens! / seconds < 100 ? 1 : 0)} tokens/s`);
const table = rows.filter((row) => results.has(row.task)).map((row) => {
  const r = results.get(row.task)!;
  const [lorakit, pytorch] = [median(r.lorakit.map(row.seconds)), median(r.pytorch.map(row.seconds))];
  const bf16 = r['pytorch-bf16']?.length ? median(r['pytorch-bf16'].map(row.seconds)) : undefined;
  const limit = row.limitSeconds && r.limit.length ? median(r.limit.map(row.limitSeconds)) : undefined;
  return { label: row.label, lorakit, pytorch, ratio: lorakit / pytorch, bf16, ofLimit: limit === undefined ? undefined : limit / lorakit, limit, show: (s: number) => show(row, s),
    rss: [median(r.lorakit.map((f) => f.peakRssBytes)), median(r.pytorch.map((f) => f.peakRssBytes))] };
});

const pythonVersions = JSON.parse(execFileSync(PYTHON, ['-c', 'import json, torch, transformers, peft, bitsandbytes; print(json.dumps({"torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__, "bitsandbytes": bitsandbytes.__version__}))'], { encoding: 'utf8' }));
const ortVersion = JSON.parse(readFileSync('node_modules/.pnpm/onnxruntime-node@1.30.0/node_modules/onnxruntime-node/package.json', 'utf8')).version;
const behind = table.filter((t) => t.ratio > 1);
const largestRss = Math.max(...[...results.values()].flatMap((r) => [...r.lorakit, ...r.pytorch].map((f) => f.peakRssBytes)));
const lines = [
  '# lorakit against PyTorch + PEFT, side by side',
  '',
  `Written by \`npm run bench:compare\` on ${measured.date} (lorakit ${measured.commit}). Each task runs in its own process;`,
  `the sides alternate, ${measured.reps} rounds; figures are medians (a training step: the median of 5 timed steps after a warm-up,`,
  'in each process). PyTorch computes in float32 on 2 threads, as lorakit does; "PyTorch bf16" is its training step under',
  'torch.autocast(bfloat16), what a user gets with one flag, and for greedy decoding its model with bfloat16 weights',
  '(half the bytes each token reads). "lorakit / PyTorch" is the ratio of times to float32 PyTorch',
  '(below 1: lorakit is faster). "of the limit" is the time this machine needs at best (the measured fp32 peak for',
  'arithmetic, counting causal attention as half its square; measured memory or disk speed for bytes) divided by lorakit\'s.',
  `No run started while other work used ${100 * BUSY}% or more of the CPU (sampled over 2 s before each run).`,
  '',
  `Machine: ${machine.model}, ${machine.cores} cores (${cpus().length} threads), fp32 peak ${machine.peakGflops.toFixed(0)} GFLOP/s measured (${machine.peakGflopsOneThread.toFixed(0)} on one thread), memory ${(bandwidth / 1e9).toFixed(1)} GB/s`,
  `(copy, read + write), ${(totalmem() / 2 ** 30).toFixed(0)} GiB. Node ${process.version}, onnxruntime-node ${ortVersion}; torch ${pythonVersions.torch}, transformers`,
  `${pythonVersions.transformers}, peft ${pythonVersions.peft}, bitsandbytes ${pythonVersions.bitsandbytes}.`,
  '',
  '| task | lorakit | PyTorch + PEFT | lorakit / PyTorch | PyTorch bf16 (lorakit / it) | lorakit of the limit (limit) | peak RSS lorakit / PyTorch |',
  '|---|---|---|---|---|---|---|',
  ...table.map((t) => `| ${t.label} | ${t.show(t.lorakit)} | ${t.show(t.pytorch)} | ${t.ratio.toFixed(2)} | ${t.bf16 === undefined ? '-' : `${t.show(t.bf16)} (${(t.lorakit / t.bf16).toFixed(2)})`} | ${t.ofLimit === undefined ? '-' : `${(100 * t.ofLimit).toFixed(0)}% (${t.show(t.limit!)})`} | ${MiB(t.rss[0])} / ${MiB(t.rss[1])} |`),
  '',
  ...(results.has('inference, Qwen3-0.6B shapes')
    ? ['The Qwen3-0.6B rows (model_type qwen3: 28 layers with q/k norms, head_dim 128, a tied 151936-token vocabulary; 0.60B',
      'parameters, random bf16 weights) run every layer and the whole head, on shorter work than the other models: steps and',
      'forwards on 1 sequence of 256 tokens instead of 4x512, greedy generation of 32 tokens instead of 64, so that each of their',
      'processes takes about a minute on this machine.', '']
    : []),
  `The largest peak RSS of any process in this run: ${(largestRss / 2 ** 30).toFixed(1)} GiB of the machine's ${(totalmem() / 2 ** 30).toFixed(0)} GiB.`,
  '',
  '![lorakit / PyTorch time per task](results.png)',
  '',
  behind.length === 0
    ? 'lorakit is at least as fast as PyTorch + PEFT on every row.'
    : `lorakit is behind PyTorch + PEFT on ${behind.length} of ${table.length} rows (${behind.map((t) => t.label.replace(/ \(.*\)$/, '')).join('; ')}). Why, and what would close each gap: benchmarks/README.md, "Side by side with PyTorch + PEFT".`,
  '',
];
writeFileSync('benchmarks/RESULTS.md', lines.join('\n'));
writeFileSync(`${OUT}/results.json`, JSON.stringify(table.map(({ label, ratio }) => ({ label, ratio })), null, 2));
execFileSync(PYTHON, ['benchmarks/compare/plot.py', `${OUT}/results.json`, 'benchmarks/results.png'], { stdio: 'inherit' });
console.log(lines.join('\n'));
