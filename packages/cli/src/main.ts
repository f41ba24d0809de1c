/**
 * The `lora` command: yargs parses and validates the flags, each command file
 * makes the library calls. Errors are one or two lines and exit 1.
 */
import yargs, { type Argv } from 'yargs';
import { hideBin } from 'yargs/helpers';
import { UsageError, finiteNumber, layerList, nonNegativeNumber, positiveInteger, positiveNumber, probability as probabilityFlag, reportError, writtenFlag } from './errors.ts';

const MODEL = 'examples/models/tiny-code-llama';
const argv = hideBin(process.argv);
const verbose = argv.includes('--verbose');

/** A number flag's coercion, given what was written on the command line for its messages. */
const numberFlag = (check: (name: string, v: unknown, written?: string) => number) => (name: string) => (v: unknown) => check(name, v, writtenFlag(argv, name));
const int = numberFlag(positiveInteger);
const positive = numberFlag(positiveNumber);
const nonNegative = numberFlag(nonNegativeNumber);
const probability = numberFlag(probabilityFlag);

const model = (y: Argv) => y.positional('model', { type: 'string', demandOption: true, describe: 'model folder (config.json + safetensors)' });

function loraOptions(y: Argv, required: boolean) {
  return y
    .option('target', { type: 'string', demandOption: required, describe: 'modules to adapt: names (q_proj,v_proj), a regex, or all-linear' })
    .option('r', { type: 'number', default: 8, coerce: int('r'), describe: 'rank' })
    .option('alpha', { type: 'number', default: 16, coerce: positive('alpha'), describe: 'lora_alpha (scaling = alpha / r)' })
    .option('dropout', { type: 'number', default: 0.05, coerce: probability('dropout'), describe: 'lora_dropout' })
    .option('rslora', { type: 'boolean', default: false, describe: 'scaling = alpha / sqrt(r)' })
    .option('dora', { type: 'boolean', default: false, describe: 'weight-decomposed LoRA (DoRA)' })
    .option('init', { type: 'string', choices: ['default', 'gaussian'], describe: 'initialisation of lora_A' })
    .option('layers', { type: 'string', coerce: layerList, describe: 'only these layer indices, like 0-3,8' })
    .option('exclude', { type: 'string', describe: 'modules never to adapt (names or a regex)' });
}

/**
 * A command's handler, loaded when the command runs (so `lora --help` loads no model code);
 * yargs' parsed arguments are handed to it as its typed Args (the options above define them).
 */
const run = <Args>(load: () => Promise<(args: Args) => Promise<void>>) => async (args: unknown) => (await load())(args as Args);

const cli = yargs(argv)
  .scriptName('lora')
  .usage('$0 <command> [options]\n\nLoRA and QLoRA fine-tuning of Hugging Face causal language models, in Node.')
  .option('verbose', { type: 'boolean', default: false, describe: 'show stack traces on errors' })
  .option('json', { type: 'boolean', default: false, describe: 'print the result as JSON' })
  .command('inspect <model>', 'show the module tree, the Linear names LoRA can target and an adapter\'s summary', (y) =>
    model(y)
      .option('adapter', { type: 'string', describe: 'adapter folder to load on top' })
      .option('depth', { type: 'number', default: 3, coerce: int('depth'), describe: 'deepest module level to print' })
      .example(`$0 inspect ${MODEL}`, 'the tree and the target names')
      .example(`$0 inspect ${MODEL} --adapter out/adapter --json`, 'adapter summary with vLLM / llama.cpp compatibility'), run(async () => (await import('./commands/inspect.ts')).inspect))
  .command('add <model>', 'create a new PEFT adapter folder for a model', (y) =>
    loraOptions(model(y), true)
      .option('out', { type: 'string', demandOption: true, describe: 'adapter folder to create' })
      .example(`$0 add ${MODEL} --target q_proj,v_proj --r 8 --alpha 16 --out out/adapter`, 'LoRA on the attention queries and values')
      .example(`$0 add ${MODEL} --target all-linear --dora --layers 0-3 --out out/dora`, 'DoRA on every linear layer of the first four blocks'), run(async () => (await import('./commands/add.ts')).add))
  .command('train <model>', 'fine-tune an adapter on a JSONL dataset', (y) =>
    loraOptions(model(y), false)
      .option('adapter', { type: 'string', describe: 'adapter folder to train (from lora add); or give --target' })
      .option('data', { type: 'string', demandOption: true, describe: 'training JSONL: {"text"}, {"prompt","completion"} or {"messages"} per line' })
      .option('eval', { type: 'string', describe: 'held-out JSONL' })
      .option('out', { type: 'string', demandOption: true, describe: 'run folder: checkpoints, training_log.jsonl, adapter/' })
      .option('qlora', { type: 'boolean', default: false, describe: 'quantize the base to NF4 first (QLoRA)' })
      .option('load-in-8bit', { type: 'boolean', default: false, describe: 'quantize the base to int8 first (LLM.int8, as transformers\' load_in_8bit): faster steps, slightly higher loss' })
      .option('resume', { type: 'boolean', default: false, describe: 'continue from the latest checkpoint in --out' })
      .option('epochs', { type: 'number', default: 1, coerce: int('epochs') })
      .option('max-steps', { type: 'number', coerce: int('max-steps'), describe: 'stop after this many optimizer steps' })
      .option('batch-size', { type: 'number', default: 4, coerce: int('batch-size') })
      .option('grad-accum', { type: 'number', default: 1, coerce: int('grad-accum'), describe: 'gradient accumulation steps' })
      .option('lr', { type: 'number', default: 2e-4, coerce: positive('lr'), describe: 'peak learning rate (AdamW)' })
      .option('weight-decay', { type: 'number', default: 0, coerce: nonNegative('weight-decay') })
      .option('scheduler', { type: 'string', choices: ['constant', 'linear', 'cosine'], default: 'linear' })
      .option('warmup', { type: 'number', default: 0, coerce: nonNegative('warmup'), describe: 'warmup steps' })
      .option('max-length', { type: 'number', default: 512, coerce: int('max-length'), describe: 'truncate examples to this many tokens' })
      .option('packing', { type: 'boolean', default: false, describe: 'pack examples into max-length sequences' })
      .option('max-grad-norm', { type: 'number', default: 1, coerce: positive('max-grad-norm') })
      .option('logging-steps', { type: 'number', default: 10, coerce: int('logging-steps') })
      .option('eval-steps', { type: 'number', coerce: int('eval-steps') })
      .option('save-steps', { type: 'number', coerce: int('save-steps') })
      .option('save-total-limit', { type: 'number', coerce: int('save-total-limit'), describe: 'keep only the last K checkpoints' })
      .option('seed', { type: 'number', default: 42, coerce: nonNegative('seed') })
      .option('gradient-checkpointing', { type: 'boolean', default: false })
      .option('compile', { type: 'boolean', default: true, describe: 'run each decoder layer as compiled onnxruntime sessions (--no-compile: op by op)' })
      .option('progress', { type: 'string', choices: ['auto', 'bar', 'lines', 'none'], default: 'auto', describe: 'auto: a bar when stderr is a terminal' })
      .example(`$0 train ${MODEL} --target q_proj,v_proj --data examples/data/house-style/train.jsonl --eval examples/data/house-style/eval.jsonl --epochs 4 --batch-size 8 --lr 3e-3 --out out/run`, '')
      .example('$0 train <model> --adapter out/adapter --data train.jsonl --out out/run --resume', 'continue after Ctrl-C'), run(async () => (await import('./commands/train.ts')).train))
  .command('merge <model>', 'fold adapters into a new checkpoint, one tensor at a time', (y) =>
    model(y)
      .option('adapter', { type: 'string', array: true, default: [] as string[], describe: 'adapter folder (repeat to merge several)' })
      .option('weight', { type: 'string', array: true, default: [] as string[], coerce: (ws: string[]) => ws.map((w) => finiteNumber('weight', w)), describe: 'weight of each adapter, in order (default 1)' })
      .option('out', { type: 'string', demandOption: true, describe: 'new model folder' })
      .option('dtype', { type: 'string', choices: ['bf16', 'f16', 'f32'], describe: 'output dtype (default: the model\'s)' })
      .option('max-shard-size', { type: 'string', default: '5GB', describe: 'largest safetensors shard' })
      .example(`$0 merge ${MODEL} --adapter out/run/adapter --out out/merged`, '')
      .example('$0 merge <model> --adapter a --weight 0.7 --adapter b --weight 0.3 --dtype bf16 --out merged', 'a weighted sum of two adapters'), run(async () => (await import('./commands/merge.ts')).merge))
  .command('generate <model>', 'complete a prompt, streaming the tokens', (y) =>
    model(y)
      .option('adapter', { type: 'string', describe: 'adapter folder to apply' })
      .option('prompt', { type: 'string', demandOption: true })
      .option('max-new-tokens', { type: 'number', default: 64, coerce: int('max-new-tokens') })
      .option('temperature', { type: 'number', coerce: positive('temperature'), describe: 'sample at this temperature (default: greedy)' })
      .option('top-k', { type: 'number', coerce: int('top-k') })
      .option('top-p', { type: 'number', coerce: positive('top-p') })
      .option('seed', { type: 'number', default: 0, coerce: nonNegative('seed') })
      .option('dtype', { type: 'string', choices: ['fp32', 'q4'], default: 'fp32', describe: 'weights while decoding: float32, or 4-bit (MatMulNBits, as lora export --dtype q4 writes)' })
      .example(`$0 generate ${MODEL} --adapter out/run/adapter --prompt 'def add(a, b):\\n'`, '')
      .example(`$0 generate ${MODEL} --dtype q4 --prompt 'def add(a, b):\\n'`, 'faster, 4-bit weights (slightly different logits)'), run(async () => (await import('./commands/generate.ts')).generate))
  .command('export <model>', 'write a model (and adapters) for another runtime: transformers.js (ONNX), llama.cpp and ollama (GGUF)', (y) =>
    model(y)
      .option('adapter', { type: 'string', array: true, default: [] as string[], describe: 'adapter folder (repeat for several)' })
      .option('format', { type: 'string', choices: ['onnx', 'gguf'], demandOption: true, describe: 'onnx: a folder transformers.js loads; gguf: model.gguf (+ an adapter GGUF each) for llama.cpp' })
      .option('out', { type: 'string', demandOption: true, describe: 'new folder' })
      .option('dtype', { type: 'string', choices: ['fp32', 'q4', 'f32', 'f16', 'bf16', 'q8_0'], describe: 'onnx: fp32 (default) or q4 (MatMulNBits); gguf: f32 (default), f16, bf16 or q8_0' })
      .option('keep-lora', { type: 'boolean', default: false, describe: 'onnx: keep the one --adapter as separate low-rank matmuls instead of folding it in' })
      .option('merge', { type: 'boolean', default: false, describe: 'gguf: fold the adapters into model.gguf instead of writing them beside it' })
      .example(`$0 export ${MODEL} --adapter out/run/adapter --format onnx --out out/onnx`, 'then: pipeline(\'text-generation\', \'out/onnx\') in transformers.js')
      .example(`$0 export ${MODEL} --format onnx --dtype q4 --out out/onnx-q4`, '4-bit weights, for the browser')
      .example(`$0 export ${MODEL} --adapter out/run/adapter --format gguf --out out/gguf`, 'then: llama-cli -m out/gguf/model.gguf --lora out/gguf/adapter.gguf'), run(async () => (await import('./commands/export.ts')).exportModel))
  .command('quantize <model>', 'write a 4-bit (bitsandbytes format) copy of a model', (y) =>
    model(y)
      .option('out', { type: 'string', demandOption: true })
      .option('type', { type: 'string', choices: ['nf4', 'fp4'], default: 'nf4' })
      .option('double-quant', { type: 'boolean', default: true, describe: 'quantize the absmax too (--no-double-quant to turn off)' })
      .option('block-size', { type: 'number', default: 64, coerce: int('block-size') })
      .option('max-shard-size', { type: 'string', default: '5GB' })
      .example(`$0 quantize ${MODEL} --out out/nf4`, ''), run(async () => (await import('./commands/quantize.ts')).quantize))
  .demandCommand(1, 'name a command: inspect, add, train, merge, generate, export or quantize')
  .strict()
  .recommendCommands()
  .help()
  .alias('h', 'help')
  .version(false)
  .wrap(Math.min(110, process.stdout.columns ?? 110))
  .fail((message, error) => {
    // yargs' own complaints and flag coercions arrive as YError; anything else came from a command
    if (error && !(error instanceof UsageError) && error.name !== 'YError') reportError(error, verbose);
    const command = argv[0] && !argv[0].startsWith('-') ? `${argv[0]} ` : '';
    process.stderr.write(`lora: ${message ?? error?.message}\n(lora ${command}--help shows the options)\n`);
    process.exit(1);
  });

try {
  await cli.parseAsync();
} catch (error) {
  reportError(error, verbose);
}
