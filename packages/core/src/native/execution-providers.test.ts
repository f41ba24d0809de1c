import test from 'ava';
import { Tensor } from '../tensor.ts';
import { matmul } from '../ops/matmul.ts';
import { availableExecutionProviders, getExecutionProviders, setExecutionProviders } from './session.ts';

test.serial('sessions run on the CPU by default; a provider this build lacks is refused, naming the ones it has', (t) => {
  t.deepEqual(getExecutionProviders(), ['cpu']);
  t.true(availableExecutionProviders().includes('cpu'));
  t.throws(() => setExecutionProviders(['coreml', 'cpu']), { message: /setExecutionProviders: coreml not in this build of onnxruntime-node; it has cpu/ });
  t.throws(() => setExecutionProviders([]), { message: /no provider given/ });
});

test.serial('a provider that cannot start (WebGPU without a GPU) is said once and left out: the ops run on the CPU with the same results', async (t) => {
  if (!availableExecutionProviders().includes('webgpu')) return t.pass('this build of onnxruntime-node has no webgpu provider');
  const [a, b] = [Tensor.randn([4, 8]), Tensor.randn([8, 3])];
  const onCpu = matmul(a, b).toArray();
  const warnings: string[] = [];
  const listen = (w: Error) => warnings.push(w.message);
  process.on('warning', listen);
  try {
    setExecutionProviders(['webgpu', 'cpu']);
    const first = matmul(a, b).toArray();
    const second = matmul(b.T, a.T).toArray();
    await new Promise((resolve) => setImmediate(resolve)); // warnings are emitted on the next tick
    t.deepEqual(first, onCpu);
    t.is(second.length, 12);
    t.deepEqual(getExecutionProviders(), ['cpu']);
    t.is(warnings.filter((w) => w.includes('webgpu')).length, 1, warnings.join('\n'));
    t.regex(warnings.find((w) => w.includes('webgpu'))!, /lorakit: the webgpu execution provider could not start \(.+\); running on the CPU/);
  } finally {
    process.off('warning', listen);
    setExecutionProviders(['cpu']);
  }
});
