/** Model folders: single file, sharded with an untrusted index, and what must be refused (docs/reliability.md section B). */
import test from 'ava';
import { mkdtemp, mkdir, writeFile, symlink, readdir } from 'node:fs/promises';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Checkpoint } from './checkpoint.ts';
import { saveShardedSafetensors, planShards } from './sharded-writer.ts';
import { saveSafetensors, tensorRecord } from './safetensors-writer.ts';
import { Tensor } from '../tensor.ts';

const root = await mkdtemp(join(tmpdir(), 'lorakit-ckpt-'));
let counter = 0;
const newDir = async () => {
  const d = join(root, `m${counter++}`);
  await mkdir(d);
  return d;
};
const record = (v: number, n = 4) => tensorRecord(Tensor.full([n], v), 'F32');
const tensors = new Map([['a', record(1)], ['b', record(2)], ['c', record(3)]]);

async function shardedFolder(): Promise<string> {
  const d = await newDir();
  await saveShardedSafetensors(d, tensors, 20); // 16 bytes each: three shards
  return d;
}

async function withIndex(weightMap: unknown, extra: Record<string, unknown> = {}): Promise<string> {
  const d = await shardedFolder();
  await writeFile(join(d, 'model.safetensors.index.json'), JSON.stringify({ metadata: {}, weight_map: weightMap, ...extra }));
  return d;
}

const goodMap = { a: 'model-00001-of-00003.safetensors', b: 'model-00002-of-00003.safetensors', c: 'model-00003-of-00003.safetensors' };

function refuses(title: string, make: () => Promise<string>, code: string, detail?: RegExp) {
  test(`${title} is refused as ${code}`, async (t) => {
    const error = await t.throwsAsync(Checkpoint.open(await make()));
    t.is(error?.name, code, error?.message);
    if (detail) t.regex(error!.message, detail);
  });
}

test('sharded save writes transformers-style shards and index, and they read back', async (t) => {
  const d = await shardedFolder();
  t.deepEqual((await readdir(d)).sort(), ['model-00001-of-00003.safetensors', 'model-00002-of-00003.safetensors', 'model-00003-of-00003.safetensors', 'model.safetensors.index.json']);
  const ckpt = await Checkpoint.open(d);
  t.deepEqual(ckpt.names().sort(), ['a', 'b', 'c']);
  t.deepEqual((await ckpt.read('c')).toArray(), [3, 3, 3, 3]);
  t.deepEqual(ckpt.warnings, []);
  await ckpt.close();
});

test('a plan puts a tensor larger than the maximum in a shard of its own', (t) => {
  t.deepEqual(planShards([['a', 5], ['big', 50], ['b', 5], ['c', 5]], 12), [['a'], ['big'], ['b', 'c']]);
});

test('a single shard is written as model.safetensors with no index', async (t) => {
  const d = await newDir();
  t.deepEqual(await saveShardedSafetensors(d, tensors, 1e9), ['model.safetensors']);
  const ckpt = await Checkpoint.open(d);
  t.is(ckpt.names().length, 3);
  await ckpt.close();
});

for (const bad of ['../../etc/passwd', '/etc/passwd', '..\\x.safetensors', 'sub/dir/x.safetensors', '..']) {
  refuses(`a weight_map entry ${JSON.stringify(bad)}`, () => withIndex({ ...goodMap, a: bad }), 'UnsafeShardPath');
}
refuses('a .bin shard in a safetensors index', () => withIndex({ ...goodMap, a: 'pytorch_model-00001.bin' }), 'UnsafeShardPath', /not a \.safetensors file/);
refuses('an index naming a missing shard', () => withIndex({ ...goodMap, a: 'model-00009-of-00009.safetensors' }), 'MissingShard', /model-00009-of-00009/);
refuses('a tensor listed in a shard that does not hold it', () => withIndex({ ...goodMap, a: 'model-00002-of-00003.safetensors' }), 'MissingTensor');
refuses('a shard tensor the index does not list', async () => {
  const d = await withIndex(goodMap);
  await saveSafetensors(join(d, 'model-00002-of-00003.safetensors'), new Map([['b', record(2)], ['extra', record(5)]]));
  return d;
}, 'UnlistedTensor', /"extra"/);
refuses('a tensor in two shards', async () => {
  const d = await withIndex(goodMap);
  await saveSafetensors(join(d, 'model-00002-of-00003.safetensors'), new Map([['b', record(2)], ['a', record(1)]]));
  return d;
}, 'DuplicateTensorName');
refuses('an index with duplicate keys', async () => {
  const d = await shardedFolder();
  await writeFile(join(d, 'model.safetensors.index.json'), '{"weight_map": {"a": "model-00001-of-00003.safetensors", "a": "x.safetensors"}}');
  return d;
}, 'InvalidIndex', /duplicate key "a"/);
refuses('an index with a non-string shard', () => withIndex({ ...goodMap, a: 7 }), 'InvalidIndex');
refuses('an index without weight_map', async () => {
  const d = await shardedFolder();
  await writeFile(join(d, 'model.safetensors.index.json'), '{"metadata": {}}');
  return d;
}, 'InvalidIndex');
refuses('a shard that links outside the folder', async () => {
  const d = await withIndex(goodMap);
  const outside = join(root, `outside-${counter++}.safetensors`);
  await saveSafetensors(outside, new Map([['a', record(1)]]));
  await writeFile(join(d, 'model-00001-of-00003.safetensors'), ''); // replaced by the link below
  execFileSync('ln', ['-sf', outside, join(d, 'model-00001-of-00003.safetensors')]);
  return d;
}, 'UnsafeShardPath');
refuses('a shard that is a FIFO', async () => {
  const d = await withIndex(goodMap);
  execFileSync('rm', [join(d, 'model-00001-of-00003.safetensors')]);
  execFileSync('mkfifo', [join(d, 'model-00001-of-00003.safetensors')]);
  return d;
}, 'NotAFile');
refuses('a shard that is a directory', async () => {
  const d = await withIndex(goodMap);
  execFileSync('rm', [join(d, 'model-00001-of-00003.safetensors')]);
  await mkdir(join(d, 'model-00001-of-00003.safetensors'));
  return d;
}, 'NotAFile');
refuses('a folder with only pickles', async () => {
  const d = await newDir();
  await writeFile(join(d, 'pytorch_model.bin'), 'not read');
  return d;
}, 'PickleNotSupported', /never runs pickles/);
refuses('a folder with no weights', newDir, 'MissingWeights');
refuses('a folder that does not exist', async () => join(root, 'nope'), 'MissingModel');

test('a shard linked into a Hugging Face cache blobs folder is accepted', async (t) => {
  const repo = join(root, `hub-${counter++}`);
  await mkdir(join(repo, 'blobs'), { recursive: true });
  await mkdir(join(repo, 'snapshots', 'abc123'), { recursive: true });
  const snapshot = join(repo, 'snapshots', 'abc123');
  await saveShardedSafetensors(join(repo, 'blobs'), tensors, 20);
  for (const f of await readdir(join(repo, 'blobs'))) await symlink(join('..', '..', 'blobs', f), join(snapshot, f));
  const ckpt = await Checkpoint.open(snapshot);
  t.deepEqual((await ckpt.read('b')).toArray(), [2, 2, 2, 2]);
  await ckpt.close();
});

test('the index wins over a stale model.safetensors and stale shards, with warnings', async (t) => {
  const d = await withIndex(goodMap, { metadata: { total_size: 999 } });
  await saveSafetensors(join(d, 'model.safetensors'), new Map([['a', record(9)]]));
  await saveSafetensors(join(d, 'model-00001-of-00005.safetensors'), new Map([['a', record(9)]]));
  const ckpt = await Checkpoint.open(d);
  t.deepEqual((await ckpt.read('a')).toArray(), [1, 1, 1, 1]);
  t.is(ckpt.warnings.length, 3);
  t.regex(ckpt.warnings.join('\n'), /the index wins/);
  t.regex(ckpt.warnings.join('\n'), /model-00001-of-00005\.safetensors/);
  t.regex(ckpt.warnings.join('\n'), /total_size says 999 bytes, the shards hold 48/);
  await ckpt.close();
});
