/**
 * Activation checkpointing: run `fn` without keeping its intermediate
 * activations, and run it again during the backward to get its gradients.
 * Memory drops to the inputs and outputs of each checkpointed block, at the
 * cost of a second forward (torch.utils.checkpoint, use_reentrant=False).
 *
 *   h = checkpoint((x) => layer.call(x, rotary, bias), h);
 *
 * The segment joins the tape when an input requires grad or when any op
 * inside was given a tensor that does (a LoRA weight behind a frozen
 * embedding); parameters used inside receive their gradients during the
 * recomputation. The recomputation replays the random numbers of the forward
 * (same dropout masks) and leaves the generator where it was, so a run with
 * checkpointing draws exactly the numbers of a run without.
 */
import { attach, enableGrad, isGradEnabled, noGrad, observeGradUse } from './autograd.ts';
import { defaultGenerator } from './random.ts';
import { Tensor } from './tensor.ts';

export function checkpoint(fn: (...inputs: Tensor[]) => Tensor, ...inputs: Tensor[]): Tensor {
  if (!isGradEnabled()) return fn(...inputs);
  const randomState = defaultGenerator.getState();
  const { result, usedGrad } = observeGradUse(() => noGrad(() => fn(...inputs)));
  if (!usedGrad && !inputs.some((x) => x.requiresGrad)) return result;
  // NOTE: a segment that returns one of its inputs (or a tensor already on the tape) gets its own node.
  const out = result.requiresGrad || inputs.includes(result) ? new Tensor(result.data, result.shape) : result;
  return attach('checkpoint', out, inputs, (g) => {
    const leaves = recompute(fn, inputs, randomState, g);
    return leaves.map((leaf, i) => () => leaf.grad ?? Tensor.zeros(inputs[i].shape, inputs[i].dtype));
  });
}

/**
 * The segment again, on the tape, with the forward's random numbers, and its
 * backward from `g`: parameters inside accumulate their gradients; the leaves
 * returned stand for the inputs and hold theirs. Runs in the node's backward
 * itself, so it happens even when no input requires grad.
 */
function recompute(fn: (...inputs: Tensor[]) => Tensor, inputs: readonly Tensor[], randomState: readonly number[], g: Tensor): Tensor[] {
  const leaves = inputs.map((x) => (x.isFloat ? x.detach().requiresGrad_(x.requiresGrad) : x));
  const resume = defaultGenerator.getState();
  defaultGenerator.setState(randomState);
  try {
    enableGrad(() => {
      const y = fn(...leaves);
      if (y.requiresGrad) y.backward(g);
    });
  } finally {
    defaultGenerator.setState(resume);
  }
  return leaves;
}
