import test from 'ava';
import { Parameter } from '../parameter.ts';
import { Tensor } from '../tensor.ts';
import { AdamW } from './adamw.ts';
import { SGD } from './sgd.ts';
import { clipGradNorm_ } from './clip.ts';
import { LRScheduler, scheduleFactor } from './schedule.ts';

/** AdamW written out in float64 from the paper, as torch.optim.AdamW defines it. */
function adamwByHand(p0: number, grads: number[], { lr, b1, b2, eps, wd }: Record<string, number>): number[] {
  let p = p0, m = 0, v = 0;
  return grads.map((g, k) => {
    const t = k + 1;
    p *= 1 - lr * wd;
    m = b1 * m + (1 - b1) * g;
    v = b2 * v + (1 - b2) * g * g;
    p -= (lr / (1 - b1 ** t)) * (m / (Math.sqrt(v) / Math.sqrt(1 - b2 ** t) + eps));
    return p;
  });
}

test('AdamW equals the hand-computed update, step for step', (t) => {
  const hyper = { lr: 0.01, b1: 0.9, b2: 0.999, eps: 1e-8, wd: 0.1 };
  const grads = [[0.5, -2], [0.1, -1], [-0.3, 0.002], [1e-4, 3]];
  const w = new Parameter(Tensor.fromArray([1.5, -0.25]));
  const opt = new AdamW([w], { lr: hyper.lr, betas: [hyper.b1, hyper.b2], eps: hyper.eps, weightDecay: hyper.wd });
  const expected = [0, 1].map((i) => adamwByHand([1.5, -0.25][i], grads.map((g) => g[i]), hyper));
  grads.forEach((g, step) => {
    w.grad = Tensor.fromArray(g);
    opt.step();
    [0, 1].forEach((i) => t.true(Math.abs(w.values[i] - expected[i][step]) < 1e-6, `step ${step + 1}, element ${i}`));
  });
});

test('AdamW restored from its state dict continues bit for bit', (t) => {
  const run = (restoreAt: number | null) => {
    let w = new Parameter(Tensor.fromArray([0.3, -0.7, 2]));
    let opt = new AdamW([w], { lr: 0.05 });
    for (let step = 0; step < 6; step++) {
      if (step === restoreAt) {
        const saved = opt.stateDict();
        w = new Parameter(w.clone());
        opt = new AdamW([w], { lr: 0.05 });
        opt.loadStateDict(saved);
      }
      w.grad = Tensor.fromArray([Math.sin(step), Math.cos(step), 0.1 * step]);
      opt.step();
    }
    return w.toArray();
  };
  t.deepEqual(run(3), run(null));
});

test('SGD with momentum and Nesterov follows torch.optim.SGD', (t) => {
  const w = new Parameter(Tensor.fromArray([1]));
  const opt = new SGD([w], { lr: 0.1, momentum: 0.9, nesterov: true, weightDecay: 0.01 });
  let p = 1, buf = 0;
  [0.5, -0.25, 1].forEach((g0, k) => {
    w.grad = Tensor.fromArray([g0]);
    opt.step();
    const g = g0 + 0.01 * p;
    buf = k === 0 ? g : 0.9 * buf + g;
    p -= 0.1 * (g + 0.9 * buf);
    t.true(Math.abs(w.values[0] - p) < 1e-6);
  });
});

test('an optimizer over no parameters is an error, not a silent no-op', (t) => {
  t.throws(() => new AdamW([]), { message: /no parameters to optimize/ });
});

test('clipGradNorm_ scales gradients to the max norm and returns the norm before', (t) => {
  const a = new Parameter(Tensor.zeros([2]));
  const b = new Parameter(Tensor.zeros([1]));
  a.grad = Tensor.fromArray([3, 0]);
  b.grad = Tensor.fromArray([4]);
  const norm = clipGradNorm_([a, b], 1);
  t.is(norm, 5);
  t.true(Math.abs(a.grad.values[0] - 3 / (5 + 1e-6)) < 1e-7);
  t.true(Math.abs(b.grad.values[0] - 4 / (5 + 1e-6)) < 1e-7);
  a.grad = Tensor.fromArray([0.3, 0]);
  b.grad = Tensor.fromArray([0.4]);
  clipGradNorm_([a, b], 1);
  t.deepEqual(a.grad.toArray(), [Math.fround(0.3), 0]);
});

test('schedules follow transformers: warmup, then constant, linear or cosine decay', (t) => {
  t.is(scheduleFactor('linear', 0, 10, 110), 0);
  t.is(scheduleFactor('linear', 5, 10, 110), 0.5);
  t.is(scheduleFactor('linear', 60, 10, 110), 0.5);
  t.is(scheduleFactor('linear', 200, 10, 110), 0);
  t.is(scheduleFactor('constant', 50, 10, 0), 1);
  t.true(Math.abs(scheduleFactor('cosine', 60, 10, 110) - 0.5) < 1e-12);
  t.true(Math.abs(scheduleFactor('cosine', 35, 10, 110) - (0.5 * (1 + Math.cos(Math.PI / 4)))) < 1e-12);
  t.is(scheduleFactor('cosine', 110, 10, 110), 0);
});

test('LRScheduler drives the optimizer and resumes from its state', (t) => {
  const w = new Parameter(Tensor.zeros([1]));
  const opt = new AdamW([w], { lr: 1e-3 });
  const sched = new LRScheduler(opt, 'linear', 2, 10);
  t.is(opt.lr, 0);
  sched.step();
  t.is(opt.lr, 5e-4);
  const other = new LRScheduler(new AdamW([w], { lr: 1e-3 }), 'linear', 2, 10);
  other.loadStateDict(sched.stateDict());
  t.is(other.optimizer.lr, 5e-4);
});
