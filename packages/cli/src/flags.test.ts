/**
 * Flags and the values shown in messages, through the built `lora` binary (issue 14): a bad flag, or a
 * bad value in a file a flag names, is exit 1 with at most five lines naming the flag, file or field, no
 * stack trace, and nothing written at --out or beside it. NaN and Infinity are shown as written, a string
 * where a number belongs with its quotes, a byte order mark as a BOM.
 */
import test from 'ava';
import { mkdir, readFile, readdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DATA, MODEL, PEFT, fails, lora, scratch } from './testing.ts';

const ADAPTER = `${PEFT}/codellama_qv_r8/adapter`;
const TRAIN = [`--data`, `${DATA}/train.jsonl`];

/** `lora ...args --out <new folder>` is refused with `pattern`, in at most five lines, and leaves its scratch folder empty. */
async function refused(t: import('ava').ExecutionContext, args: string[], pattern: RegExp): Promise<string> {
  const parent = await scratch();
  const running = lora(...args, '--out', join(parent, 'out'));
  await fails(t, running, pattern);
  const { stderr } = await running;
  t.true(stderr.trimEnd().split('\n').length <= 5, stderr);
  t.deepEqual(await readdir(parent), [], 'nothing written at --out or beside it');
  return stderr;
}

/** A copy of a folder (its files symlinked) with `name` replaced by `bytes`. */
async function withFile(folder: string, name: string, bytes: Uint8Array): Promise<string> {
  const dir = join(await scratch(), 'copy');
  await mkdir(dir);
  for (const file of await readdir(folder)) if (file !== name) await symlink(join(folder, file), join(dir, file));
  await writeFile(join(dir, name), bytes);
  return dir;
}

const BOM = [0xef, 0xbb, 0xbf];
const withBom = async (path: string) => new Uint8Array([...BOM, ...(await readFile(path))]);
const adapterConfig = async (change: Record<string, unknown>) => new TextEncoder().encode(JSON.stringify({ ...JSON.parse(await readFile(`${ADAPTER}/adapter_config.json`, 'utf8')), ...change }));

test('a reversed --layers range is an error naming --layers, in add and train', async (t) => {
  await refused(t, ['add', MODEL, '--target', 'q_proj', '--layers', '5-2'], /^lora: --layers: the range 5-2 is reversed; write 2-5$/m);
  await refused(t, ['train', MODEL, '--target', 'q_proj', '--layers', '0,3-1', ...TRAIN], /--layers: the range 3-1 is reversed/);
});

test('--layers naming a layer the model does not have names --layers and the layers it has, not --target', async (t) => {
  for (const layers of ['99', '0,99']) {
    const stderr = await refused(t, ['add', MODEL, '--target', 'q_proj', '--layers', layers], /^lora: --layers: .*tiny-code-llama has no layer 99; its layers are 0 to 5$/m);
    t.notRegex(stderr, /--target/);
  }
  await refused(t, ['train', MODEL, '--target', 'q_proj,v_proj', '--layers', '6', ...TRAIN], /--layers: .* has no layer 6; its layers are 0 to 5/);
});

test('--layers with no value, repeated, or far past any model is an error naming --layers', async (t) => {
  await refused(t, ['add', MODEL, '--target', 'q_proj', '--layers', '', '--r', '4'], /--layers takes numbers and ranges like 0-3,8, got ""/);
  await refused(t, ['add', MODEL, '--target', 'q_proj', '--layers', '1', '--layers', '2'], /--layers was given 2 times; give it once/);
  await refused(t, ['add', MODEL, '--target', 'q_proj', '--layers', '0-99999999999'], /--layers: layer 99999999999 is past the last layer of any model/);
});

test('--layers with --adapter in train is an error: the adapter keeps its own layers', async (t) => {
  await refused(t, ['train', MODEL, '--adapter', ADAPTER, '--layers', '0', ...TRAIN], /--layers goes with --target/);
});

test('--max-shard-size of zero, below a byte, negative, unparseable or past 2^53 bytes is an error naming the flag', async (t) => {
  const cases: Array<[string, RegExp]> = [
    ['0', /--max-shard-size must be at least one byte, got "0"/],
    ['0GB', /--max-shard-size must be at least one byte, got "0GB"/],
    ['0.4B', /--max-shard-size must be at least one byte/],
    ['-1', /--max-shard-size takes a size like 5GB or 500MB, got "-1"/],
    ['5 parsecs', /--max-shard-size takes a size like 5GB or 500MB, got "5 parsecs"/],
    ['99999999999GB', /--max-shard-size must be at most 2\^53 bytes/],
  ];
  for (const [size, pattern] of cases) await refused(t, ['merge', MODEL, '--adapter', ADAPTER, '--max-shard-size', size], pattern);
  await refused(t, ['quantize', MODEL, '--max-shard-size', '0'], /--max-shard-size must be at least one byte/);
});

test('NaN and Infinity in number flags are shown as written, not as null', async (t) => {
  const add = ['add', MODEL, '--target', 'q_proj'];
  await refused(t, [...add, '--r', 'NaN'], /^lora: --r must be a positive integer, got NaN$/m);
  await refused(t, [...add, '--alpha', 'Infinity'], /^lora: --alpha must be a positive number, got Infinity$/m);
  await refused(t, [...add, '--alpha=-Infinity'], /^lora: --alpha must be a positive number, got -Infinity$/m);
  await refused(t, [...add, '--dropout', 'NaN'], /^lora: --dropout must be a number >= 0, got NaN$/m);
  await refused(t, ['train', MODEL, '--target', 'q_proj', '--lr', 'NaN', ...TRAIN], /^lora: --lr must be a positive number, got NaN$/m);
  await refused(t, ['merge', MODEL, '--adapter', ADAPTER, '--weight', 'NaN'], /^lora: --weight must be a finite number, got NaN$/m);
  await refused(t, ['merge', MODEL, '--adapter', ADAPTER, '--weight=-Infinity'], /^lora: --weight must be a finite number, got -Infinity$/m);
});

test('text where a number belongs is shown with its quotes, a number without', async (t) => {
  const add = ['add', MODEL, '--target', 'q_proj'];
  await refused(t, [...add, '--r', 'abc'], /^lora: --r must be a positive integer, got "abc"$/m);
  await refused(t, [...add, '--r', '1.5'], /^lora: --r must be a positive integer, got 1\.5$/m);
  await refused(t, ['merge', MODEL, '--adapter', ADAPTER, '--weight', 'half'], /^lora: --weight must be a finite number, got "half"$/m);
  await refused(t, ['add', MODEL, '--target', 'q\u001bproj'], /--target "q\\u001bproj" matched no module/);
});

test('a number flag given twice or without a value is an error naming it', async (t) => {
  await refused(t, ['add', MODEL, '--target', 'q_proj', '--r', '4', '--r', '8'], /--r was given 2 times; give it once/);
  await refused(t, ['add', MODEL, '--target', 'q_proj', '--r'], /--r needs a value/);
});

test('adapter_config.json with "r": "8" is refused before anything is written, showing the string with its quotes', async (t) => {
  const adapter = await withFile(ADAPTER, 'adapter_config.json', await adapterConfig({ r: '8' }));
  await refused(t, ['merge', MODEL, '--adapter', adapter], /adapter_config\.json: r: must be a positive integer, got "8"$/m);
});

test('a byte order mark at the start of adapter_config.json or config.json is named as a BOM', async (t) => {
  const adapter = await withFile(ADAPTER, 'adapter_config.json', await withBom(`${ADAPTER}/adapter_config.json`));
  await refused(t, ['merge', MODEL, '--adapter', adapter], /adapter_config\.json: starts with a byte order mark \(BOM\)/);
  const model = await withFile(MODEL, 'config.json', await withBom(`${MODEL}/config.json`));
  const stderr = await refused(t, ['add', model, '--target', 'q_proj'], /config\.json: starts with a byte order mark \(BOM\)/);
  t.notRegex(stderr, /unexpected character/);
  t.deepEqual(new Uint8Array(await readFile(join(model, 'config.json'))), await withBom(`${MODEL}/config.json`));
});

test('a byte order mark at the start of the training JSONL is named as a BOM, with the file and line', async (t) => {
  const data = join(await scratch(), 'train.jsonl');
  await writeFile(data, await withBom(`${DATA}/train.jsonl`));
  const stderr = await refused(t, ['train', MODEL, '--target', 'q_proj', '--data', data], /train\.jsonl:1: .*starts with a byte order mark \(BOM\)/);
  t.notRegex(stderr, /unexpected character/);
});

test('the sizes and layer lists that are valid still work', async (t) => {
  const out = join(await scratch(), 'a');
  const { code, stderr } = await lora('add', MODEL, '--target', 'q_proj', '--layers', '3-3,0', '--out', out);
  t.is(code, 0, stderr);
  t.is(JSON.parse(await readFile(join(out, 'adapter_config.json'), 'utf8')).layers_to_transform.join(), '0,3');
  const merged = join(await scratch(), 'm');
  const merge = await lora('merge', MODEL, '--adapter', ADAPTER, '--weight', '-0.5', '--max-shard-size', '1MiB', '--out', merged);
  t.is(merge.code, 0, merge.stderr);
  t.true((await readdir(merged)).includes('model.safetensors.index.json'));
});

