/**
 * llama.cpp's arithmetic where it departs from float32, for tests that compare lorakit with llama.cpp and should
 * see only the file under test.
 *
 * ggmlGelu: ggml's CPU GELU (built with GGML_GELU_FP16, the default): 0 at or below -10, x at or above 10, and
 * between them a table read at x rounded to float16, holding the tanh GELU rounded to float16. Against the float32
 * tanh GELU it moves a Gemma fixture's log-probabilities by up to about 1e-3. useGgmlGelu makes a model's gated
 * MLPs (those saying `activation: 'gelu_pytorch_tanh'`) compute it.
 */
import { Tensor } from '../tensor.ts';
import type { Module } from '../module.ts';
import { gelu } from '../ops/unary.ts';
import { f16ToF32, f32ToF16 } from '../dtype.ts';

const toF16 = (v: number) => f16ToF32(f32ToF16(v));

export function ggmlGelu(x: Tensor): Tensor {
  const at = new Tensor(Float32Array.from(x.values, toF16), x.shape);
  const table = gelu(at, 'tanh').values;
  return new Tensor(Float32Array.from(x.values, (v, i) => (v <= -10 ? 0 : v >= 10 ? v : toF16(table[i]))), x.shape);
}

export function useGgmlGelu(model: Module): void {
  for (const [, module] of model.namedModules()) if ((module as { activation?: string }).activation === 'gelu_pytorch_tanh') Object.assign(module, { act: ggmlGelu });
}
