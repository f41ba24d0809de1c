/** 4-bit quantization against bitsandbytes' CPU results (conformance/make_bnb_fixtures.py), bit for bit. */
import test from 'ava';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { SafetensorsFile } from '../io/index.ts';
import type { Tensor } from '../tensor.ts';
import { DYNAMIC } from './codebooks.ts';
import { dequantize4bit, quantize4bit } from './blockwise-4bit.ts';
import { doubleQuantize, expandAbsmax } from './double-quant.ts';

const dir = fileURLToPath(new URL('../../fixtures/bnb/', import.meta.url));
const { cases } = JSON.parse(await readFile(`${dir}cases.json`, 'utf8')) as { cases: string[] };
const file = await SafetensorsFile.open(`${dir}quantization.safetensors`);
const ref = new Map<string, Tensor>();
for (const name of file.names()) ref.set(name, await file.read(name));
await file.close();

const bits = (a: ArrayLike<number>) => Array.from(new Uint32Array(Float32Array.from(a).buffer));

test('the dynamic map equals bitsandbytes\' create_dynamic_map', (t) => {
  t.deepEqual(bits(DYNAMIC), bits(ref.get('dynamic_map')!.values));
});

for (const name of cases) {
  const [type, block, mode] = name.split('_') as ['nf4' | 'fp4', string, 'dq' | 'plain'];
  const blockSize = Number(block);
  test(`${name}: packed codes, absmax and dequantized values equal bitsandbytes bit for bit`, (t) => {
    const input = ref.get(`${name}.input`)!.values as Float32Array;
    const { packed, absmax } = quantize4bit(input, type, blockSize);
    t.deepEqual(Array.from(packed), Array.from(ref.get(`${name}.packed`)!.data as Uint8Array));
    let expanded = absmax;
    if (mode === 'dq') {
      const dq = doubleQuantize(absmax);
      const bnb = ref.get(`${name}.absmax`)!.data as Uint8Array;
      t.deepEqual(Array.from(dq.quantized), Array.from(bnb), 'quantized absmax');
      t.deepEqual(bits(dq.nestedAbsmax), bits(ref.get(`${name}.nested_absmax`)!.values), 'nested absmax');
      t.is(dq.offset, ref.get(`${name}.offset`)!.item());
      expanded = expandAbsmax(dq);
    } else {
      t.deepEqual(bits(absmax), bits(ref.get(`${name}.absmax`)!.values));
    }
    t.deepEqual(bits(dequantize4bit(packed, expanded, type, blockSize, input.length)), bits(ref.get(`${name}.dequantized`)!.values));
  });
}
