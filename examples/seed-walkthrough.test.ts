import test from 'ava';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const script = fileURLToPath(new URL('./seed-walkthrough.ts', import.meta.url));

test('the seed walkthrough tells the tutorial: children, replacement, hooks and freezing', (t) => {
  const out = execFileSync(process.execPath, ['--import=tsx', script], { encoding: 'utf8', env: { ...process.env, LORAKIT_THREADS: '1' } });
  t.regex(out, /child mlp: MLP\n(?!child)/); // w and b are not children
  t.regex(out, /parameter w +\[2\]/);
  t.regex(out, /temperature: a plain Tensor with requiresGrad is not a parameter/);
  t.regex(out, /children: mlp, w\n/);
  t.regex(out, /re-initialised Linear\(in_features=2, out_features=1, bias=true\)/);
  t.regex(out, /the storing hook kept a \[3, 8\] activation/);
  t.regex(out, /mlp\.layers\.0\.weight +requiresGrad=false grad=none/);
  t.regex(out, /w\.weight +requiresGrad=true +grad=\[1, 2\]/);
  t.regex(out, /trainable 4 of 62 parameters/);
});
