import test from 'ava';
import { Generator, manualSeed } from './random.ts';
import { Tensor } from './tensor.ts';

test('manualSeed makes random tensors reproducible', (t) => {
  manualSeed(42);
  const a = Tensor.randn([50]).toArray();
  manualSeed(42);
  const b = Tensor.randn([50]).toArray();
  manualSeed(43);
  const c = Tensor.randn([50]).toArray();
  t.deepEqual(a, b);
  t.notDeepEqual(a, c);
});

test('a restored generator state continues the same stream', (t) => {
  const g = new Generator(5);
  g.normal(); // leaves a spare normal in the state
  const state = g.getState();
  const expected = [g.normal(), g.uniform(), g.nextUint32()];
  const h = new Generator(0);
  h.setState(state);
  t.deepEqual([h.normal(), h.uniform(), h.nextUint32()], expected);
});

test('uniform and normal samples have the right moments', (t) => {
  const g = new Generator(3);
  const n = 200_000;
  let su = 0, sn = 0, sn2 = 0;
  for (let i = 0; i < n; i++) {
    su += g.uniform();
    const z = g.normal();
    sn += z;
    sn2 += z * z;
  }
  t.true(Math.abs(su / n - 0.5) < 0.005);
  t.true(Math.abs(sn / n) < 0.01);
  t.true(Math.abs(sn2 / n - 1) < 0.01);
});

test('a dropout mask takes one 32-bit draw per element, nextUint32\'s own, and leaves the generator where those draws would', (t) => {
  const [fast, slow] = [new Generator(11), new Generator(11)];
  const mask = new Float32Array(1000);
  fast.fillDropoutMask(mask, 0.3, 2);
  const threshold = Math.floor(0.3 * 2 ** 32);
  t.deepEqual([...mask], Array.from({ length: 1000 }, () => (slow.nextUint32() < threshold ? 0 : 2)));
  t.is(fast.nextUint32(), slow.nextUint32());
  const dropped = mask.filter((m) => m === 0).length;
  t.true(dropped > 250 && dropped < 350, `${dropped} of 1000 dropped at p = 0.3`);
});
