/** The flag checks behind the command's messages: what was written, how it is shown, layer lists and sizes. */
import test from 'ava';
import { UsageError, byteSize, finiteNumber, layerList, positiveInteger, shownFlag, writtenFlag } from './errors.ts';

test('writtenFlag finds the last text given for a flag, in either spelling, up to --', (t) => {
  t.is(writtenFlag(['add', 'm', '--r', 'abc'], 'r'), 'abc');
  t.is(writtenFlag(['--r=1', '--r', '2'], 'r'), '2');
  t.is(writtenFlag(['--maxSteps', 'x'], 'max-steps'), 'x');
  t.is(writtenFlag(['--lr', '-1'], 'lr'), '-1', 'a negative number is a value');
  t.is(writtenFlag(['--r', '--out', 'x'], 'r'), '', 'a flag after it means no value');
  t.is(writtenFlag(['--', '--r', '3'], 'r'), undefined);
  t.is(writtenFlag(['--rank', '3'], 'r'), undefined);
});

test('shownFlag shows numbers as yargs read them and other text with its quotes', (t) => {
  t.is(shownFlag(Number.NaN, 'NaN'), 'NaN');
  t.is(shownFlag(-Infinity, '-Infinity'), '-Infinity');
  t.is(shownFlag(Number.NaN, 'abc'), '"abc"');
  t.is(shownFlag(0, '0x0'), '"0x0"');
  t.is(shownFlag(1.5, undefined), '1.5');
  t.is(shownFlag(undefined, undefined), 'nothing');
});

test('number checks name the flag and show the value as written', (t) => {
  t.throws(() => positiveInteger('r', Number.NaN, 'NaN'), { instanceOf: UsageError, message: '--r must be a positive integer, got NaN' });
  t.throws(() => positiveInteger('r', [4, 8]), { message: '--r was given 2 times; give it once' });
  t.throws(() => finiteNumber('weight', 'Infinity'), { message: '--weight must be a finite number, got Infinity' });
  t.throws(() => finiteNumber('weight', '1,5'), { message: '--weight must be a finite number, got "1,5"' });
  t.is(finiteNumber('weight', ' -0.25 '), -0.25);
});

test('layerList expands ranges and refuses reversed, empty and absurd ones', (t) => {
  t.deepEqual(layerList('3, 0-2,2'), [0, 1, 2, 3]);
  t.throws(() => layerList('5-2'), { message: '--layers: the range 5-2 is reversed; write 2-5' });
  t.throws(() => layerList(''), { message: '--layers takes numbers and ranges like 0-3,8, got ""' });
  t.throws(() => layerList('0-1e9'), { message: /got "0-1e9"/ });
  t.throws(() => layerList('0-100000'), { message: '--layers: layer 100000 is past the last layer of any model (at most 99999)' });
});

test('byteSize reads units and refuses sizes below one byte or past 2^53', (t) => {
  t.is(byteSize('5GB'), 5e9);
  t.is(byteSize('1 MiB'), 2 ** 20);
  t.is(byteSize('0.6B'), 1);
  t.throws(() => byteSize('0'), { message: '--max-shard-size must be at least one byte, got "0"' });
  t.throws(() => byteSize('-5GB'), { message: /takes a size like 5GB or 500MB, got "-5GB"/ });
  t.throws(() => byteSize('9999999GB'), { message: /at most 2\^53 bytes/ });
});
