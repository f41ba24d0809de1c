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

/** A node as a builder keeps it: ONNX's NodeProto, in the fields lorakit writes (onnx-proto's types stay inside). */
export interface GraphNode {
  opType: string;
  input: string[];
  output: string[];
  attribute?: unknown[];
  domain?: string;
}

/** A constant: ONNX's TensorProto, in the fields lorakit writes. */
export interface GraphConstant {
  name: string;
  dims: number[];
  dataType: number;
  floatData?: number[];
  doubleData?: number[];
  int32Data?: number[];
  int64Data?: number[];
}

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
  readonly #nodes: GraphNode[] = [];
  readonly #inputs: Array<[string, ElemType]> = [];
  readonly #outputs: Array<[string, ElemType]> = [];
  readonly #initializers: GraphConstant[] = [];
  #counter = 0;

  /** `dtype` is the element type of inputs and outputs unless one says otherwise. */
  constructor(readonly name: string, readonly dtype: ElemType) {}

  input(name: string, type: ElemType = this.dtype): string {
    this.#inputs.push([name, type]);
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
    const tensor: GraphConstant = { name, dataType: elemTypes[this.dtype], dims: [] };
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
    this.#outputs.push([name, type]);
  }

  /** A node or an initializer made elsewhere (another graph inlined), added as it is. */
  addNode(node: GraphNode): void {
    this.#nodes.push(node);
  }

  addInitializer(tensor: GraphConstant): void {
    this.#initializers.push(tensor);
  }

  /** A name no node of this builder has given. */
  freshName(prefix: string): string {
    return `${prefix}${this.#counter++}`;
  }

  get nodes(): readonly GraphNode[] {
    return this.#nodes;
  }

  get initializers(): readonly GraphConstant[] {
    return this.#initializers;
  }

  build(): Uint8Array {
    return modelBytes(this.name, this.#nodes, this.#inputs, this.#outputs, this.#initializers);
  }
}

/** A whole model's bytes: the nodes, inputs and outputs (name and element type) and constants of one graph. */
export function modelBytes(
  name: string,
  nodes: readonly GraphNode[],
  inputs: ReadonlyArray<readonly [string, ElemType]>,
  outputs: ReadonlyArray<readonly [string, ElemType]>,
  initializers: readonly GraphConstant[],
): Uint8Array {
  const graph: Onnx.IGraphProto = {
    name,
    node: nodes as Onnx.INodeProto[],
    input: inputs.map(([n, type]) => valueInfo(n, type)),
    output: outputs.map(([n, type]) => valueInfo(n, type)),
    initializer: initializers as Onnx.ITensorProto[],
  };
  const model: Onnx.IModelProto = {
    irVersion: 8,
    producerName: 'lorakit',
    opsetImport: [
      { domain: '', version: ONNX_OPSET },
      { domain: 'com.microsoft', version: MICROSOFT_OPSET },
    ],
    graph,
  };
  return onnx.ModelProto.encode(onnx.ModelProto.create(model)).finish();
}

/** What a node computes, as bytes: its op, domain, attributes and inputs (not its outputs' names). */
export function nodeKey(node: GraphNode): string {
  const proto = onnx.NodeProto.encode(onnx.NodeProto.create({ ...(node as Onnx.INodeProto), output: [], name: '' })).finish();
  return Buffer.from(proto).toString('base64');
}

/** A constant's type, dims and values, as bytes (not its name). */
export function constantKey(tensor: GraphConstant): string {
  const proto = onnx.TensorProto.encode(onnx.TensorProto.create({ ...(tensor as Onnx.ITensorProto), name: '' })).finish();
  return Buffer.from(proto).toString('base64');
}

/** A graph read back from a model's bytes: its nodes, input and output names in order, and constants. */
export function decodeGraph(bytes: Uint8Array): { nodes: GraphNode[]; inputs: string[]; outputs: string[]; initializers: GraphConstant[] } {
  const graph = onnx.ModelProto.decode(bytes).graph!;
  return {
    nodes: (graph.node ?? []) as GraphNode[],
    inputs: (graph.input ?? []).map((v) => v.name!),
    outputs: (graph.output ?? []).map((v) => v.name!),
    initializers: (graph.initializer ?? []) as GraphConstant[],
  };
}
