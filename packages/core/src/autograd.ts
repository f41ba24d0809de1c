/**
 * Reverse-mode autograd on a tape.
 *
 * An op computes its output, then `record`s how to get its inputs' gradients
 * from the output's gradient. The backward returns one thunk per input, so a
 * gradient nobody needs (a frozen weight) is never computed:
 *
 *   const y = matmul(x, w);   // w frozen: backward computes dx only
 *   loss.backward();
 *
 * `backward` walks the graph in reverse topological order, asserts each
 * gradient's shape, accumulates into leaves' `.grad`, and frees the tape.
 */
import type { Tensor } from './tensor.ts';
import { formatShape, sameShape } from './shape.ts';

export type GradThunk = (() => Tensor) | null;

export interface GradFn {
  readonly op: string;
  readonly inputs: readonly Tensor[];
  readonly backward: (grad: Tensor) => readonly GradThunk[];
}

let gradEnabled = true;

/** Set only while observeGradUse runs (a checkpointed segment's forward). */
let gradUse: { seen: boolean } | null = null;

/** What a non-leaf holds after backward() has released its part of the tape. */
const released: GradFn = {
  op: 'released',
  inputs: [],
  backward: () => {
    throw new Error('backward: this graph was already released by an earlier backward() call; run the forward again');
  },
};

export function isGradEnabled(): boolean {
  return gradEnabled;
}

/** Run `fn` without recording anything on the tape. */
export function noGrad<T>(fn: () => T): T {
  const previous = gradEnabled;
  gradEnabled = false;
  try {
    return fn();
  } finally {
    gradEnabled = previous;
  }
}

/** Run `fn` with the tape recording again (inside noGrad, or inside a backward). */
export function enableGrad<T>(fn: () => T): T {
  const previous = gradEnabled;
  gradEnabled = true;
  try {
    return fn();
  } finally {
    gradEnabled = previous;
  }
}

/**
 * Run `fn` and tell whether any op inside was given a tensor that requires
 * grad, even under noGrad where nothing is recorded (a LoRA weight used by a
 * checkpointed layer whose input is frozen). Outside it, ops pay one null check.
 */
export function observeGradUse<T>(fn: () => T): { result: T; usedGrad: boolean } {
  const outer = gradUse;
  const observer = { seen: false };
  gradUse = observer;
  try {
    return { result: fn(), usedGrad: observer.seen };
  } finally {
    gradUse = outer;
    if (outer !== null && observer.seen) outer.seen = true; // a nested segment's use is the outer one's too
  }
}

/** Tell an observing checkpoint (observeGradUse) what an op was given; `record` does it for every op. */
export function noteInputs(inputs: readonly Tensor[]): void {
  if (gradUse !== null && !gradUse.seen) gradUse.seen = inputs.some((t) => t.requiresGrad);
}

/** Attach a backward to `out` when grad is on and an input requires grad. */
export function record(
  op: string,
  out: Tensor,
  inputs: readonly Tensor[],
  backward: (grad: Tensor) => readonly GradThunk[],
): Tensor {
  noteInputs(inputs);
  if (gradEnabled && inputs.some((t) => t.requiresGrad)) attach(op, out, inputs, backward);
  return out;
}

/**
 * Attach a backward to `out` whatever its inputs require: for a node whose
 * gradients flow to tensors it uses inside (checkpoint), not only to its inputs.
 * The backward walk calls `backward` for every node it reaches.
 */
export function attach(op: string, out: Tensor, inputs: readonly Tensor[], backward: (grad: Tensor) => readonly GradThunk[]): Tensor {
  out.requiresGrad = true;
  out.gradFn = { op, inputs, backward };
  return out;
}

/** Tensors reachable from `root` through grad functions, inputs before users. */
function topologicalOrder(root: Tensor): Tensor[] {
  const order: Tensor[] = [];
  const visited = new Set<Tensor>([root]);
  const stack: Array<[Tensor, number]> = [[root, 0]];
  while (stack.length > 0) {
    const top = stack[stack.length - 1];
    const inputs = top[0].gradFn?.inputs ?? [];
    if (top[1] < inputs.length) {
      const next = inputs[top[1]++];
      if (next.requiresGrad && !visited.has(next)) {
        visited.add(next);
        stack.push([next, 0]);
      }
    } else {
      order.push(top[0]);
      stack.pop();
    }
  }
  return order;
}

export function backward(root: Tensor, grad: Tensor): void {
  if (!root.requiresGrad) throw new Error('backward: the tensor does not require grad and has no grad function');
  const grads = new Map<Tensor, Tensor>([[root, grad]]);
  const order = topologicalOrder(root);
  noGrad(() => {
    for (let i = order.length - 1; i >= 0; i--) {
      const tensor = order[i];
      const g = grads.get(tensor);
      grads.delete(tensor);
      if (g === undefined) continue;
      const fn = tensor.gradFn;
      if (fn === null) {
        tensor.grad = tensor.grad === null ? g : tensor.grad.add(g);
        continue;
      }
      const thunks = fn.backward(g); // throws if the graph was released
      fn.inputs.forEach((input, k) => {
        const thunk = thunks[k];
        if (!input.requiresGrad || thunk === null) return;
        const gi = thunk();
        if (!sameShape(gi.shape, input.shape)) {
          throw new Error(`backward of ${fn.op}: gradient ${formatShape(gi.shape)} for input ${k} of shape ${formatShape(input.shape)}`);
        }
        const previous = grads.get(input);
        grads.set(input, previous === undefined ? gi : previous.add(gi));
      });
      tensor.gradFn = released;
    }
  });
}
