/** Linear4bit: MatMulBnb4 equals dequantize-then-matmul, forward and input gradient; memory per weight. */
import test from 'ava';
import { Tensor } from '../tensor.ts';
import { Generator } from '../random.ts';
import { matmul } from '../ops/matmul.ts';
import { dequantizeNodes, Linear4bit } from './linear-4bit.ts';
import { GraphBuilder } from '../native/graph.ts';
import { nativeKernel } from '../native/session.ts';
import { relativeErrorOf } from '../testing/assert.ts';

const rng = new Generator(9);

for (const [quantType, blockSize, doubleQuant] of [['nf4', 64, true], ['fp4', 64, false], ['nf4', 128, false]] as const) {
  test(`${quantType}, block ${blockSize}${doubleQuant ? ', double quant' : ''}: forward and input gradient equal dequantize-then-matmul to 1e-5`, (t) => {
    const weight = Tensor.randn([96, 160], { generator: rng }).mul(0.05);
    const bias = Tensor.randn([96], { generator: rng });
    const layer = Linear4bit.fromWeight(weight, bias, { quantType, blockSize, doubleQuant });
    const dense = layer.denseWeight();
    const x = Tensor.randn([2, 7, 160], { generator: rng }).requiresGrad_();
    const y = layer.call(x);
    const reference = matmul(x.reshape([-1, 160]), dense, { transposeB: true }).add(bias).reshape([2, 7, 96]);
    t.true(relativeErrorOf(y, reference) < 1e-5, `forward ${relativeErrorOf(y, reference)}`);
    const dy = Tensor.randn([2, 7, 96], { generator: rng });
    y.backward(dy);
    const dx = matmul(dy.reshape([-1, 96]), dense).reshape([2, 7, 160]);
    t.true(relativeErrorOf(x.grad!, dx) < 1e-5, `input gradient ${relativeErrorOf(x.grad!, dx)}`);
  });
}

test('a double-quantized layer holds about 4.13 bits per weight', (t) => {
  const layer = Linear4bit.fromWeight(Tensor.randn([1536, 576], { generator: rng }), null, { quantType: 'nf4', blockSize: 64, doubleQuant: true });
  const bytes = layer.weight.numel + layer.double!.quantized.length + 4 * layer.double!.nestedAbsmax.length;
  t.true(bytes / (1536 * 576) <= 0.53, `${bytes / (1536 * 576)} bytes per weight`);
  t.true((8 * bytes) / (1536 * 576) < 4.14);
});

test('the state dict carries bitsandbytes\' keys', (t) => {
  const layer = Linear4bit.fromWeight(Tensor.randn([4, 64], { generator: rng }), null, { quantType: 'nf4', blockSize: 64, doubleQuant: true });
  t.deepEqual([...layer.stateDict().keys()], ['weight', 'weight.absmax', 'weight.nested_absmax', 'weight.nested_quant_map', 'weight.quant_map', 'weight.quant_state.bitsandbytes__nf4']);
  const state = JSON.parse(new TextDecoder().decode(layer.stateDict().get('weight.quant_state.bitsandbytes__nf4')!.data as Uint8Array));
  t.deepEqual(state.shape, [4, 64]);
  t.is(state.nested_blocksize, 256);
});

for (const [quantType, blockSize, doubleQuant, out, inFeatures] of [['nf4', 64, true, 96, 160], ['fp4', 64, false, 5, 40], ['nf4', 128, false, 3, 100]] as const) {
  test(`the backward's graph dequantizes ${quantType} codes in blocks of ${blockSize} (${out}x${inFeatures}) to dequantize4bit's very bits`, (t) => {
    const layer = Linear4bit.fromWeight(Tensor.randn([out, inFeatures], { generator: rng }), null, { quantType, blockSize, doubleQuant });
    const kernel = nativeKernel(`dequantize-test:${quantType}:${blockSize}:${out}:${inFeatures}`, 'float32', () => {
      const g = new GraphBuilder('dequantize', 'float32');
      g.output(dequantizeNodes(g, g.input('w', 'uint8'), g.input('absmax'), inFeatures, out, layer.quantization));
      return g.build();
    });
    const [native] = kernel.run(layer.kernelInputs());
    t.deepEqual(native.shape, [out, inFeatures]);
    t.deepEqual(Array.from(native.values), Array.from(layer.denseWeight().values));
  });
}
