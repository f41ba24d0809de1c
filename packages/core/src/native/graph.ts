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
/** A value's declared shape: numbers for fixed dims, names for the ones a run chooses (an exported graph's inputs). */
export type DeclaredShape = ReadonlyArray<number | string>;
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
  /** The values as little-endian bytes (large weights); ONNX's raw_data. */
  rawData?: Uint8Array;
  /** 1: the values are in another file, which externalData names (location, offset, length). */
  dataLocation?: number;
  externalData?: Array<{ key: string; value: string }>;
}

/** A graph input or output: its name, element type and, for exported graphs, its shape. */
export type GraphValue = readonly [name: string, type: ElemType, shape?: DeclaredShape];

export const ONNX_OPSET = 15;
const MICROSOFT_OPSET = 1;

function valueInfo([name, type, shape]: GraphValue): Onnx.IValueInfoProto {
  const dims = shape?.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d }));
  return { name, type: { tensorType: { elemType: elemTypes[type], ...(dims && { shape: { dim: dims } }) } } };
}

export function elemTypeNumber(type: ElemType): number {
  return elemTypes[type];
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
  readonly #inputs: GraphValue[] = [];
  readonly #outputs: GraphValue[] = [];
  readonly #initializers: GraphConstant[] = [];
  #counter = 0;

  /** `dtype` is the element type of inputs and outputs unless one says otherwise. */
  constructor(readonly name: string, readonly dtype: ElemType) {}

  input(name: string, type: ElemType = this.dtype, shape?: DeclaredShape): string {
    this.#inputs.push([name, type, shape]);
    return name;
  }

  /** Add a node; returns its output name(s). Attributes: integers are INT, others FLOAT. */
  node(opType: string, inputs: readonly string[], attributes: Record<string, Attribute> = {}, domain = ''): string {
    return this.nodeWithOutputs(opType, inputs, 1, attributes, domain)[0];
  }

  nodeWithOutputs(opType: string, inputs: readonly string[], outputs: number, attributes: Record<string, Attribute> = {}, domain = ''): string[] {
    const names = Array.from({ length: outputs }, () => `${opType.toLowerCase()}_${this.#counter++}`);
    return this.namedNode(opType, inputs, names, attributes, domain);
  }

  /** Add a node whose outputs have the given names (one that takes another's place). */
  namedNode(opType: string, inputs: readonly string[], outputs: readonly string[], attributes: Record<string, Attribute> = {}, domain = ''): string[] {
    const attribute_ = Object.entries(attributes).map(([k, v]) => attribute(k, v));
    this.#nodes.push({ opType, input: [...inputs], output: [...outputs], attribute: attribute_, domain });
    return [...outputs];
  }

  /** A constant int64 tensor baked into the graph (shapes, axes). */
  int64Constant(values: readonly number[]): string {
    const name = `const_${this.#counter++}`;
    this.#initializers.push({ name, dataType: elemTypes.int64, dims: [values.length], int64Data: [...values] });
    return name;
  }

  /** A constant int64 scalar. */
  int64Scalar(value: number): string {
    const name = `const_${this.#counter++}`;
    this.#initializers.push({ name, dataType: elemTypes.int64, dims: [], int64Data: [value] });
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

  output(name: string, type: ElemType = this.dtype, shape?: DeclaredShape): void {
    this.#outputs.push([name, type, shape]);
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

  get inputs(): readonly GraphValue[] {
    return this.#inputs;
  }

  get outputs(): readonly GraphValue[] {
    return this.#outputs;
  }

  build(opset = ONNX_OPSET): Uint8Array {
    return modelBytes(this.name, this.#nodes, this.#inputs, this.#outputs, this.#initializers, opset);
  }
}

/** A whole model's bytes: the nodes, inputs and outputs (name and element type) and constants of one graph. */
export function modelBytes(
  name: string,
  nodes: readonly GraphNode[],
  inputs: readonly GraphValue[],
  outputs: readonly GraphValue[],
  initializers: readonly GraphConstant[],
  opset = ONNX_OPSET,
): Uint8Array {
  const graph: Onnx.IGraphProto = {
    name,
    node: nodes as Onnx.INodeProto[],
    input: inputs.map(valueInfo),
    output: outputs.map(valueInfo),
    initializer: initializers as Onnx.ITensorProto[],
  };
  const model: Onnx.IModelProto = {
    irVersion: 8,
    producerName: 'lorakit',
    opsetImport: [
      { domain: '', version: opset },
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
