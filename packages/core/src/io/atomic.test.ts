import test from 'ava';
import { mkdtemp, readdir, readFile, symlink, writeFile } from 'node:fs/promises';
// NOTE: each test works in a folder of its own: tests run concurrently and look for temporary files.
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeFileAtomic } from './atomic.ts';

const folder = () => mkdtemp(join(tmpdir(), 'lorakit-atomic-'));

test('a failed write leaves the previous file and no temporary file', async (t) => {
  const dir = await folder();
  const path = join(dir, 'out.bin');
  await writeFile(path, 'previous');
  await t.throwsAsync(writeFileAtomic(path, async (handle) => {
    await handle.write('half of the new con');
    throw new Error('disk full');
  }), { message: 'disk full' });
  t.is(await readFile(path, 'utf8'), 'previous');
  t.deepEqual((await readdir(dir)).filter((f) => f.includes('.tmp-')), []);
});

test('a successful write replaces the file whole', async (t) => {
  const dir = await folder();
  const path = join(dir, 'replace.bin');
  await writeFile(path, 'old');
  await writeFileAtomic(path, async (handle) => void (await handle.write('new')));
  t.is(await readFile(path, 'utf8'), 'new');
});

test('writing through a symbolic link is refused and the link target is untouched', async (t) => {
  const dir = await folder();
  const target = join(dir, 'target.bin');
  await writeFile(target, 'keep');
  await symlink(target, join(dir, 'link.bin'));
  await t.throwsAsync(writeFileAtomic(join(dir, 'link.bin'), async (h) => void (await h.write('x'))), { message: /refusing to write through a symbolic link/ });
  t.is(await readFile(target, 'utf8'), 'keep');
});

test('a missing folder is an error and creates nothing', async (t) => {
  const dir = await folder();
  await t.throwsAsync(writeFileAtomic(join(dir, 'no', 'such', 'file.bin'), async () => {}), { code: 'ENOENT' });
  t.false((await readdir(dir)).includes('no'));
});
