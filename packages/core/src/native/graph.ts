/**
 * Small ONNX graphs, written as code and serialized with onnx-proto.
 *
 *   const g = new GraphBuilder('matmul', 'float32');
 *   const y = g.node('MatMul', [g.input('a'), g.input('b')]);
 *   g.output(y);
 *   const bytes = g.build();
 *
 * Inputs and outputs carry only an element type, no shape, so one session
 * serves every shape (and rank) of its op.
 */
import onnxProto from 'onnx-proto';
import type { onnx as Onnx } from 'onnx-proto';

const { onnx } = onnxProto;

export type ElemType = 'float32' | 'float64' | 'int32' | 'int64' | 'uint8' | 'int8';
type Attribute = number | readonly number[] | string;

const elemTypes: Record<ElemType, number> = {
  float32: onnx.TensorProto.DataType.FLOAT,
  float64: onnx.TensorProto.DataType.DOUBLE,
  int32: onnx.TensorProto.DataType.INT32,
  int64: onnx.TensorProto.DataType.INT64,
  uint8: onnx.TensorProto.DataType.UINT8,
  int8: onnx.TensorProto.DataType.INT8,
};

export const ONNX_OPSET = 15;
const MICROSOFT_OPSET = 1;

function valueInfo(name: string, type: ElemType): Onnx.IValueInfoProto {
  return { name, type: { tensorType: { elemType: elemTypes[type] } } };
}

function attribute(name: string, value: Attribute): Onnx.IAttributeProto {
  const { AttributeType } = onnx.AttributeProto;
  if (typeof value === 'string') return { name, type: AttributeType.STRING, s: new TextEncoder().encode(value) };
  if (typeof value === 'number') {
    return Number.isInteger(value) ? { name, type: AttributeType.INT, i: value } : { name, type: AttributeType.FLOAT, f: value };
  }
  return { name, type: AttributeType.INTS, ints: [...value] };
}

export class GraphBuilder {
  readonly #nodes: Onnx.INodeProto[] = [];
  readonly #inputs: Onnx.IValueInfoProto[] = [];
  readonly #outputs: Onnx.IValueInfoProto[] = [];
  readonly #initializers: Onnx.ITensorProto[] = [];
  #counter = 0;

  /** `dtype` is the element type of inputs and outputs unless one says otherwise. */
  constructor(readonly name: string, readonly dtype: ElemType) {}

  input(name: string, type: ElemType = this.dtype): string {
    this.#inputs.push(valueInfo(name, type));
    return name;
  }

  /** Add a node; returns its output name(s). Attributes: integers are INT, others FLOAT. */
  node(opType: string, inputs: readonly string[], attributes: Record<string, Attribute> = {}, domain = ''): string {
    return this.nodeWithOutputs(opType, inputs, 1, attributes, domain)[0];
  }

  nodeWithOutputs(opType: string, inputs: readonly string[], outputs: number, attributes: Record<string, Attribute> = {}, domain = ''): string[] {
    const names = Array.from({ length: outputs }, () => `${opType.toLowerCase()}_${this.#counter++}`);
    const attribute_ = Object.entries(attributes).map(([k, v]) => attribute(k, v));
    this.#nodes.push({ opType, input: [...inputs], output: names, attribute: attribute_, domain });
    return names;
  }

  /** A constant int64 tensor baked into the graph (shapes, axes). */
  int64Constant(values: readonly number[]): string {
    const name = `const_${this.#counter++}`;
    this.#initializers.push({ name, dataType: elemTypes.int64, dims: [values.length], int64Data: [...values] });
    return name;
  }

  /** A constant scalar of the graph's float type. */
  scalar(value: number): string {
    const name = `const_${this.#counter++}`;
    const tensor: Onnx.ITensorProto = { name, dataType: elemTypes[this.dtype], dims: [] };
    if (this.dtype === 'float64') tensor.doubleData = [value];
    else tensor.floatData = [value];
    this.#initializers.push(tensor);
    return name;
  }

  /** A constant float32 tensor baked into the graph (a codebook). */
  float32Constant(values: ArrayLike<number>, dims: readonly number[] = [values.length]): string {
    const name = `const_${this.#counter++}`;
    this.#initializers.push({ name, dataType: elemTypes.float32, dims: [...dims], floatData: Array.from(values) });
    return name;
  }

  output(name: string, type: ElemType = this.dtype): void {
    this.#outputs.push(valueInfo(name, type));
  }

  /** A node or an initializer made elsewhere (another graph inlined), added as it is. */
  addNode(node: Onnx.INodeProto): void {
    this.#nodes.push(node);
  }

  addInitializer(tensor: Onnx.ITensorProto): void {
    this.#initializers.push(tensor);
  }

  /** A name no node of this builder has given. */
  freshName(prefix: string): string {
    return `${prefix}${this.#counter++}`;
  }

  get nodes(): readonly Onnx.INodeProto[] {
    return this.#nodes;
  }

  get initializers(): readonly Onnx.ITensorProto[] {
    return this.#initializers;
  }

  build(): Uint8Array {
    return modelBytes(this.name, this.#nodes, this.#inputs, this.#outputs, this.#initializers);
  }
}

export function modelBytes(
  name: string,
  node: readonly Onnx.INodeProto[],
  input: readonly Onnx.IValueInfoProto[],
  output: readonly Onnx.IValueInfoProto[],
  initializer: readonly Onnx.ITensorProto[],
): Uint8Array {
  const model: Onnx.IModelProto = {
    irVersion: 8,
    producerName: 'lorakit',
    opsetImport: [
      { domain: '', version: ONNX_OPSET },
      { domain: 'com.microsoft', version: MICROSOFT_OPSET },
    ],
    graph: { name, node: [...node], input: [...input], output: [...output], initializer: [...initializer] },
  };
  return onnx.ModelProto.encode(onnx.ModelProto.create(model)).finish();
}

export { valueInfo };

/** A graph's nodes, inputs, outputs and initializers, read back from its bytes. */
export function decodeGraph(bytes: Uint8Array): Onnx.IGraphProto {
  return onnx.ModelProto.decode(bytes).graph!;
}
