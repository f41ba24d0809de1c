/**
 * The safetensors reader against byte-built files: every malformed case of
 * docs/reliability.md section A is rejected with a typed error naming the file,
 * before any tensor is read; valid edge cases load with the right values.
 */
import test from 'ava';
import { mkdtemp, writeFile, readFile, appendFile, open as openFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { SafetensorsFile } from './safetensors-reader.ts';
import { saveSafetensors, tensorRecord } from './safetensors-writer.ts';
import { Tensor } from '../tensor.ts';

const dir = await mkdtemp(join(tmpdir(), 'lorakit-st-'));
let counter = 0;

/** A file from a header (object or raw text), a declared length and data bytes. */
async function build({ header, data = new Uint8Array(), length }: { header: unknown; data?: Uint8Array; length?: bigint }): Promise<string> {
  const json = header instanceof Uint8Array ? Buffer.from(header) : Buffer.from(typeof header === 'string' ? header : JSON.stringify(header), 'utf8');
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(length ?? BigInt(json.length));
  const path = join(dir, `case-${counter++}.safetensors`);
  await writeFile(path, Buffer.concat([prefix, json, data]));
  return path;
}

const f32 = (...values: number[]) => new Uint8Array(Float32Array.from(values).buffer);
const info = (dtype: string, shape: unknown, offsets: unknown) => ({ dtype, shape, data_offsets: offsets });

function rejects(title: string, make: () => Promise<string>, code: string, detail?: RegExp) {
  test(`${title} is rejected as ${code}`, async (t) => {
    const path = await make();
    const before = createHash('sha256').update(await readFile(path)).digest('hex');
    const error = await t.throwsAsync(SafetensorsFile.open(path));
    t.is(error?.name, code, error?.message);
    t.true(error!.message.startsWith(path), 'the message names the file');
    if (detail) t.regex(error!.message, detail);
    t.is(createHash('sha256').update(await readFile(path)).digest('hex'), before, 'the input is untouched');
  });
}

// A1-A3: lengths
rejects('an empty file', async () => { const p = join(dir, 'empty.safetensors'); await writeFile(p, ''); return p; }, 'HeaderTooSmall');
rejects('a 7-byte file', async () => { const p = join(dir, 'seven.safetensors'); await writeFile(p, Buffer.alloc(7)); return p; }, 'HeaderTooSmall');
rejects('a header length past the end', () => build({ header: {}, length: 1000n }), 'InvalidHeaderLength');
rejects('a header length of 2^64-1', () => build({ header: {}, length: 2n ** 64n - 1n }), 'HeaderTooLarge');
rejects('a header length of 2^53+1', () => build({ header: {}, length: 2n ** 53n + 1n }), 'HeaderTooLarge');
rejects('a header length of 100,000,001', () => build({ header: {}, length: 100_000_001n }), 'HeaderTooLarge');
// A4-A6: JSON
rejects('a zero-length header', () => build({ header: '', length: 0n }), 'InvalidHeaderJson');
rejects('a header that is an array', () => build({ header: '[]' }), 'InvalidHeaderJson');
rejects('a header that is a string', () => build({ header: '"x"' }), 'InvalidHeaderJson');
rejects('a truncated header', () => build({ header: '{' }), 'InvalidHeaderJson');
rejects('invalid UTF-8', () => build({ header: Uint8Array.of(0x7b, 0x22, 0xff, 0x22, 0x3a, 0x6e, 0x75, 0x6c, 0x6c, 0x7d) }), 'InvalidHeaderUtf8');
rejects('an overlong UTF-8 encoding', () => build({ header: Uint8Array.of(0x7b, 0x22, 0xc0, 0xaf, 0x22, 0x3a, 0x6e, 0x75, 0x6c, 0x6c, 0x7d) }), 'InvalidHeaderUtf8');
rejects('a lone surrogate escape', () => build({ header: '{"\\ud800": null}' }), 'InvalidHeaderJson', /lone high surrogate/);
rejects('trailing garbage after the JSON', () => build({ header: '{}x' }), 'InvalidHeaderJson');
rejects('NUL padding after the JSON', () => build({ header: '{}\0\0' }), 'InvalidHeaderJson');
rejects('a byte-order mark', () => build({ header: '\ufeff{}' }), 'InvalidHeaderJson');
rejects('a comment', () => build({ header: '{} // x' }), 'InvalidHeaderJson');
rejects('a trailing comma', () => build({ header: '{"__metadata__": {"a": "b",}}' }), 'InvalidHeaderJson');
for (const [name, byte] of [['space', 0x20], ['tab', 0x09], ['newline', 0x0a], ['carriage return', 0x0d]] as const) {
  rejects(`a header starting with a ${name}`, () => build({ header: Uint8Array.of(byte, 0x7b, 0x7d) }), 'InvalidHeaderJson', /the header must begin with "\{"/);
}
// A7-A9: duplicates and fields
rejects('a duplicate tensor name', () => build({ header: '{"a": {"dtype":"F32","shape":[1],"data_offsets":[0,4]}, "a": {"dtype":"F32","shape":[1],"data_offsets":[4,8]}}', data: f32(1, 2) }), 'DuplicateTensorName');
rejects('a duplicate name spelled with an escape', () => build({ header: '{"a": {"dtype":"F32","shape":[1],"data_offsets":[0,4]}, "\\u0061": {"dtype":"F32","shape":[1],"data_offsets":[4,8]}}', data: f32(1, 2) }), 'DuplicateTensorName');
rejects('a duplicate dtype field', () => build({ header: '{"a": {"dtype":"F32","dtype":"F16","shape":[1],"data_offsets":[0,4]}}', data: f32(1) }), 'InvalidHeaderJson', /duplicate key "dtype"/);
rejects('a duplicate __metadata__', () => build({ header: '{"__metadata__": {}, "__metadata__": {}}' }), 'DuplicateTensorName');
rejects('a missing dtype', () => build({ header: { a: { shape: [1], data_offsets: [0, 4] } }, data: f32(1) }), 'InvalidTensorInfo');
rejects('an extra field', () => build({ header: { a: { ...info('F32', [1], [0, 4]), foo: 1 } }, data: f32(1) }), 'InvalidTensorInfo');
// A10-A11: dtypes
rejects('dtype F128', () => build({ header: { a: info('F128', [1], [0, 16]) }, data: new Uint8Array(16) }), 'UnknownDtype', /valid: F64, F32, F16, BF16/);
rejects('dtype f32 in lower case', () => build({ header: { a: info('f32', [1], [0, 4]) }, data: f32(1) }), 'UnknownDtype');
rejects('an empty dtype', () => build({ header: { a: info('', [1], [0, 4]) }, data: f32(1) }), 'UnknownDtype');
// A12-A15: numbers
for (const offsets of ['[-8,0]', '[0,8.0]', '[0,8e0]', '["0","8"]', '[0,8,16]', '[0]']) {
  rejects(`data_offsets ${offsets}`, () => build({ header: `{"a": {"dtype":"F32","shape":[2],"data_offsets":${offsets}}}`, data: f32(1, 2) }), 'InvalidOffset');
}
rejects('an offset of 2^64-1', () => build({ header: '{"a": {"dtype":"U8","shape":[1],"data_offsets":[18446744073709551615, 18446744073709551616]}}', data: new Uint8Array(1) }), 'InvalidOffset', /18446744073709551615/);
rejects('an offset of 2^53+1', () => build({ header: '{"a": {"dtype":"U8","shape":[1],"data_offsets":[0, 9007199254740993]}}', data: new Uint8Array(1) }), 'InvalidOffset', /9007199254740993/);
rejects('a shape whose product overflows', () => build({ header: '{"a": {"dtype":"F32","shape":[2, 9223372036854775807],"data_offsets":[0,8]}}', data: f32(1, 2) }), 'InvalidShape');
rejects('a negative dim', () => build({ header: { a: info('F32', [-2], [0, 8]) }, data: f32(1, 2) }), 'InvalidShape');
rejects('a fractional dim', () => build({ header: '{"a": {"dtype":"F32","shape":[2.0],"data_offsets":[0,8]}}', data: f32(1, 2) }), 'InvalidShape');
rejects('a zero-sized shape with a huge dim', () => build({ header: '{"a": {"dtype":"F32","shape":[0, 4611686018427387904],"data_offsets":[0,0]}}' }), 'InvalidShape');
// A16-A18: sizes and coverage
rejects('a size that does not match the shape', () => build({ header: { w: info('F32', [3], [0, 8]) }, data: f32(1, 2) }), 'TensorSizeMismatch', /tensor "w"/);
rejects('a gap between tensors', () => build({ header: { a: info('F32', [1], [0, 4]), b: info('F32', [1], [8, 12]) }, data: f32(1, 2, 3) }), 'InvalidOffset', /gap/);
rejects('overlapping tensors', () => build({ header: { a: info('F32', [2], [0, 8]), b: info('F32', [1], [4, 8]) }, data: f32(1, 2) }), 'InvalidOffset', /overlaps/);
rejects('two tensors on one range', () => build({ header: { a: info('F32', [1], [0, 4]), b: info('F32', [1], [0, 4]) }, data: f32(1) }), 'InvalidOffset');
rejects('a first tensor not at 0', () => build({ header: { a: info('F32', [1], [4, 8]) }, data: f32(1, 2) }), 'InvalidOffset');
rejects('end before begin', () => build({ header: { a: info('F32', [0], [8, 4]) }, data: f32(1, 2) }), 'InvalidOffset');
rejects('one trailing byte', () => build({ header: { a: info('F32', [1], [0, 4]) }, data: new Uint8Array([...f32(1), 0]) }), 'IncompleteBuffer');
rejects('an appended ZIP', () => build({ header: { a: info('F32', [1], [0, 4]) }, data: new Uint8Array([...f32(1), 0x50, 0x4b, 0x03, 0x04]) }), 'IncompleteBuffer');
rejects('two missing bytes', () => build({ header: { a: info('F32', [1], [0, 4]) }, data: f32(1).slice(0, 2) }), 'IncompleteBuffer');
// A19-A20: metadata and names
rejects('a number in __metadata__', () => build({ header: { __metadata__: { x: 1 } } }), 'InvalidMetadata');
rejects('nested __metadata__', () => build({ header: { __metadata__: { x: { y: 'z' } } } }), 'InvalidMetadata');
rejects('an array __metadata__', () => build({ header: { __metadata__: ['x'] } }), 'InvalidMetadata');
rejects('a NUL in a tensor name', () => build({ header: { 'a\0b': info('F32', [1], [0, 4]) }, data: f32(1) }), 'InvalidTensorName');

test('an ANSI escape in a tensor name is escaped in the message', async (t) => {
  const path = await build({ header: { '\u001b[31mred': info('F32', [3], [0, 4]) }, data: f32(1) });
  const error = await t.throwsAsync(SafetensorsFile.open(path));
  t.false(error!.message.includes('\u001b'));
  t.true(error!.message.includes('\\u001b[31mred'));
});

test('a megabyte-long name is cut short in the message', async (t) => {
  const path = await build({ header: { ['x'.repeat(1_000_000)]: info('F32', [3], [0, 4]) }, data: f32(1) });
  const error = await t.throwsAsync(SafetensorsFile.open(path));
  t.true(error!.message.length < 500);
});

test('__proto__ and constructor are ordinary tensor names', async (t) => {
  const path = await build({ header: '{"__proto__": {"dtype":"F32","shape":[1],"data_offsets":[0,4]}, "constructor": {"dtype":"F32","shape":[1],"data_offsets":[4,8]}}', data: f32(7, 8) });
  const file = await SafetensorsFile.open(path);
  t.deepEqual(file.names(), ['__proto__', 'constructor']);
  t.deepEqual((await file.read('__proto__')).toArray(), [7]);
  t.is(({} as Record<string, unknown>).dtype, undefined, 'no prototype was polluted');
  await file.close();
});

test('null __metadata__ is treated as absent, and whitespace after the JSON is accepted as padding', async (t) => {
  const file = await SafetensorsFile.open(await build({ header: '{"__metadata__": null}\r\n\t  ' }));
  t.is(file.metadata, null);
  t.deepEqual(file.names(), []);
  await file.close();
});

test('header order need not follow offset order, and odd data offsets read correctly', async (t) => {
  // A 3-byte header puts the data at offset 11: F32 values must be copied, not viewed.
  const header = `{"b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}` + ' ';
  const file = await SafetensorsFile.open(await build({ header, data: f32(1, 2, 3, 4) }));
  t.deepEqual((await file.read('a')).toArray(), [1, 2]);
  t.deepEqual((await file.read('b')).toArray(), [3, 4]);
  await file.close();
});

test('zero-size tensors, scalars and an empty header load', async (t) => {
  const file = await SafetensorsFile.open(await build({ header: { s: info('F32', [], [0, 4]), z: info('F32', [0, 3], [4, 4]), y: info('I64', [0], [4, 4]) }, data: f32(2.5) }));
  t.is((await file.read('s')).item(), 2.5);
  t.deepEqual((await file.read('z')).shape, [0, 3]);
  await file.close();
  t.deepEqual((await SafetensorsFile.open(await build({ header: {} }))).names(), []);
});

test('F4/F8 tensors open but refuse math with UnsupportedDtype', async (t) => {
  const file = await SafetensorsFile.open(await build({ header: { q: info('F8_E4M3', [2], [0, 2]) }, data: new Uint8Array(2) }));
  const error = await t.throwsAsync(file.read('q'));
  t.is(error?.name, 'UnsupportedDtype');
  t.deepEqual(await file.readBytes('q'), new Uint8Array(2));
  await file.close();
});

test('a file changed after open is detected when a tensor is read', async (t) => {
  const path = await build({ header: { a: info('F32', [1], [0, 4]) }, data: f32(1) });
  const file = await SafetensorsFile.open(path);
  await appendFile(path, 'zz');
  const error = await t.throwsAsync(file.read('a'));
  t.is(error?.name, 'FileChanged');
  await file.close();
});

test('every dtype round-trips through the writer and reader with bf16/f16 rounding to nearest even', async (t) => {
  const path = join(dir, 'roundtrip.safetensors');
  const values = Tensor.fromArray([[1, -2.5, 1.00390625], [65504, 1e-8, 3]]);
  const ints = Tensor.fromArray([[1, -2, 3]], 'int32');
  await saveSafetensors(path, new Map([
    ['f32', tensorRecord(values, 'F32')], ['bf16', tensorRecord(values, 'BF16')], ['f16', tensorRecord(values, 'F16')],
    ['f64', tensorRecord(values, 'F64')], ['i64', tensorRecord(ints, 'I64')], ['i32', tensorRecord(ints, 'I32')],
    ['i16', tensorRecord(ints, 'I16')], ['i8', tensorRecord(ints, 'I8')], ['u8', tensorRecord(Tensor.fromArray([0, 255], 'int32'), 'U8')],
    ['bool', tensorRecord(Tensor.fromArray([0, 1], 'int32'), 'BOOL')],
  ]));
  const file = await SafetensorsFile.open(path);
  t.deepEqual(file.names(), ['bf16', 'bool', 'f16', 'f32', 'f64', 'i16', 'i32', 'i64', 'i8', 'u8']);
  t.deepEqual(Object.fromEntries(file.metadata!), { format: 'pt' });
  t.deepEqual((await file.read('f32')).toArray(), values.toArray());
  t.deepEqual((await file.read('bf16')).toArray(), [1, -2.5, 1, 65536, 1.0011717677116394e-8 /* 0x322c: 1e-8 is 0x322bcc77 */, 3]);
  t.deepEqual((await file.read('f16')).toArray(), [1, -2.5, 1.00390625, 65504, 0 /* below half the smallest subnormal */, 3]);
  t.deepEqual((await file.read('i64')).toArray(), [1, -2, 3]);
  t.is((await file.read('i64')).dtype, 'int64');
  t.deepEqual((await file.read('i8')).toArray(), [1, -2, 3]);
  t.deepEqual((await file.read('u8')).toArray(), [0, 255]);
  await file.close();
  const raw = await readFile(path);
  t.is(Number(raw.readBigUInt64LE(0)) % 8, 0, 'the header is padded to 8 bytes');
});

test('a file above 2 GiB opens and reads a tensor past the 2 GiB mark without reading the rest', async (t) => {
  const big = 2 ** 31 + 64; // a sparse zero tensor, then a small one
  const header = JSON.stringify({ big: info('U8', [big], [0, big]), tail: info('F32', [2], [big, big + 8]) });
  const path = await build({ header });
  const handle = await openFile(path, 'r+');
  const dataStart = 8 + Buffer.byteLength(header);
  await handle.write(Buffer.from(f32(6, 7)), 0, 8, dataStart + big);
  await handle.close();
  const file = await SafetensorsFile.open(path);
  t.deepEqual((await file.read('tail')).toArray(), [6, 7]);
  await file.close();
});
