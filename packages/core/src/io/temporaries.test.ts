/** Which temporaries a run may remove: only its own in progress, or ours for that destination whose process is gone. */
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, readdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { removeStaleTemporaries, removeTemporariesNow, temporaryPath, track } from './temporaries.ts';

/** The id of a process that has exited. */
const deadPid = () => spawnSync(process.execPath, ['-e', '']).pid!;

test('a temporary is named after its destination and this process', (t) => {
  t.regex(temporaryPath('/data/out/merged'), new RegExp(`^/data/out/\\.merged\\.tmp-${process.pid}-[0-9a-f]{8}$`));
});

test('stale temporaries of the destination are removed; anything else is left', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'lorakit-temporaries-'));
  const dead = deadPid();
  const stale = [`.merged.tmp-${dead}-0123abcd`];
  const kept = [
    `.merged.tmp-${process.pid}-0123abcd`, // this process's
    `.merged.tmp-${process.ppid}-0123abcd`, // a running process's
    `.merged2.tmp-${dead}-0123abcd`, // another destination's
    `.merged.tmp-${dead}-0123abc`, // not our pattern
    `.merged.tmp-${dead}-0123ABCD`,
    'merged',
  ];
  for (const name of [...stale, ...kept]) await mkdir(join(dir, name));
  await writeFile(join(dir, stale[0], 'model.safetensors'), 'partial');
  t.deepEqual(await removeStaleTemporaries(join(dir, 'merged')), stale.map((name) => join(dir, name)));
  t.deepEqual((await readdir(dir)).sort(), [...kept].sort());
});

test('removeTemporariesNow removes what is in progress, and only that', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'lorakit-temporaries-'));
  const [writing, done] = [temporaryPath(join(dir, 'a')), temporaryPath(join(dir, 'b'))];
  await mkdir(writing);
  await writeFile(join(writing, 'part'), 'x');
  await mkdir(done);
  track(writing);
  track(done)(); // finished: forgotten
  t.deepEqual(removeTemporariesNow(), [writing]);
  t.deepEqual(await readdir(dir), [done.split('/').pop()]);
});
