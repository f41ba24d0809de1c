/**
 * Parameter and Buffer: tensors that a Module owns.
 *
 * A Parameter assigned to a module property is one of its parameters (and
 * requires grad unless told otherwise); a Buffer is state that belongs in the
 * state dict but is not trained (PyTorch's nn.Buffer). A plain Tensor on a
 * module is neither, exactly as in PyTorch: see findUnregisteredTensors.
 */
import { Tensor } from './tensor.ts';

export class Parameter extends Tensor {
  constructor(tensor: Tensor, requiresGrad = true) {
    super(tensor.data, tensor.shape);
    this.requiresGrad_(requiresGrad);
  }
}

export class Buffer extends Tensor {
  constructor(tensor: Tensor, readonly persistent = true) {
    super(tensor.data, tensor.shape);
  }
}
