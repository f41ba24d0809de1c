/**
 * ParameterDict: parameters under string keys (PyTorch's nn.ParameterDict),
 * the container PEFT keeps embedding LoRA factors in, so their names carry no
 * `.weight`: `lora_embedding_A.default`, saved as `lora_embedding_A`.
 *
 *   const dict = new ParameterDict();
 *   dict.set('default', new Parameter(Tensor.zeros([4, 128])));
 *   dict.ownTensors()   // [['default', Parameter]]
 *
 * The tree sees the entries through ownTensors() (see keyed-dict.ts).
 */
import { Parameter, type Buffer } from '../parameter.ts';
import { KeyedDict } from './keyed-dict.ts';

export class ParameterDict extends KeyedDict<Parameter> {
  protected readonly entryKind = 'Parameter';

  protected accepts(value: unknown): value is Parameter {
    return value instanceof Parameter;
  }

  protected copyEntry(p: Parameter, copies: Map<object, object>): Parameter {
    if (!copies.has(p)) copies.set(p, new Parameter(p.clone(), p.requiresGrad));
    return copies.get(p) as Parameter;
  }

  override ownTensors(): Array<[string, Parameter | Buffer]> {
    return [...super.ownTensors(), ...this.entries()];
  }
}
