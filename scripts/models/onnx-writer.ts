// Minimal ONNX model writer on protobufjs.
//
// ONNX_PROTO below is a subset of onnx/onnx.proto3 with the official field
// numbers (do not renumber: they are the wire format). Fields not listed are
// simply never written. Output is deterministic: protobufjs encodes fields in
// field-number order and repeated fields in array order, and only fields that are
// explicitly set, so equal inputs give byte-identical models.
import protobuf from 'protobufjs';

const ONNX_PROTO = `
syntax = "proto3";
package onnx;

message AttributeProto {
  enum AttributeType {
    UNDEFINED = 0; FLOAT = 1; INT = 2; STRING = 3; TENSOR = 4; GRAPH = 5;
    FLOATS = 6; INTS = 7; STRINGS = 8; TENSORS = 9; GRAPHS = 10;
    SPARSE_TENSOR = 11; SPARSE_TENSORS = 12; TYPE_PROTO = 13; TYPE_PROTOS = 14;
  }
  string name = 1;
  float f = 2;
  int64 i = 3;
  bytes s = 4;
  TensorProto t = 5;
  GraphProto g = 6;
  repeated float floats = 7;
  repeated int64 ints = 8;
  repeated bytes strings = 9;
  repeated TensorProto tensors = 10;
  repeated GraphProto graphs = 11;
  string doc_string = 13;
  AttributeType type = 20;
}

message ValueInfoProto {
  string name = 1;
  TypeProto type = 2;
  string doc_string = 3;
}

message NodeProto {
  repeated string input = 1;
  repeated string output = 2;
  string name = 3;
  string op_type = 4;
  repeated AttributeProto attribute = 5;
  string doc_string = 6;
  string domain = 7;
}

message ModelProto {
  int64 ir_version = 1;
  string producer_name = 2;
  string producer_version = 3;
  string domain = 4;
  int64 model_version = 5;
  string doc_string = 6;
  GraphProto graph = 7;
  repeated OperatorSetIdProto opset_import = 8;
  repeated StringStringEntryProto metadata_props = 14;
}

message StringStringEntryProto {
  string key = 1;
  string value = 2;
}

message GraphProto {
  repeated NodeProto node = 1;
  string name = 2;
  repeated TensorProto initializer = 5;
  string doc_string = 10;
  repeated ValueInfoProto input = 11;
  repeated ValueInfoProto output = 12;
  repeated ValueInfoProto value_info = 13;
}

message TensorProto {
  repeated int64 dims = 1;
  int32 data_type = 2;
  repeated float float_data = 4;
  repeated int32 int32_data = 5;
  repeated bytes string_data = 6;
  repeated int64 int64_data = 7;
  string name = 8;
  bytes raw_data = 9;
  repeated double double_data = 10;
  string doc_string = 12;
}

message TensorShapeProto {
  message Dimension {
    oneof value {
      int64 dim_value = 1;
      string dim_param = 2;
    }
    string denotation = 3;
  }
  repeated Dimension dim = 1;
}

message TypeProto {
  message Tensor {
    int32 elem_type = 1;
    TensorShapeProto shape = 2;
  }
  oneof value {
    Tensor tensor_type = 1;
  }
  string denotation = 6;
}

message OperatorSetIdProto {
  string domain = 1;
  int64 version = 2;
}
`;

const root = protobuf.parse(ONNX_PROTO, { keepCase: true }).root;
const ModelProtoType = root.lookupType('onnx.ModelProto');

/** TensorProto.DataType values (the subset this project uses). */
export const DataType = {
  FLOAT: 1,
  UINT8: 2,
  INT8: 3,
  INT32: 6,
  INT64: 7,
  STRING: 8,
  BOOL: 9,
  DOUBLE: 11,
} as const;
export type DataTypeCode = (typeof DataType)[keyof typeof DataType];

/** AttributeProto.AttributeType values. */
export const AttributeType = {
  FLOAT: 1,
  INT: 2,
  STRING: 3,
  TENSOR: 4,
  FLOATS: 6,
  INTS: 7,
  STRINGS: 8,
} as const;

// Plain-object shapes of the messages above (keys as in onnx.proto3).
export interface TensorProto {
  name: string;
  data_type: DataTypeCode;
  dims: number[];
  raw_data?: Uint8Array;
  string_data?: Uint8Array[];
  doc_string?: string;
}
export interface AttributeProto {
  name: string;
  type: (typeof AttributeType)[keyof typeof AttributeType];
  f?: number;
  i?: number;
  s?: Uint8Array;
  t?: TensorProto;
  floats?: number[];
  ints?: number[];
  strings?: Uint8Array[];
}
export interface NodeProto {
  op_type: string;
  input: string[];
  output: string[];
  name?: string;
  domain?: string;
  attribute?: AttributeProto[];
  doc_string?: string;
}
/**
 * A dimension is a fixed size (dim_value), a symbolic name such as "batch" (dim_param),
 * or null: dynamic and unnamed (neither field set).
 */
export type Dim = number | string | null;
type DimensionProto = { dim_value: number } | { dim_param: string } | Record<string, never>;
export interface ValueInfoProto {
  name: string;
  type: { tensor_type: { elem_type: DataTypeCode; shape: { dim: DimensionProto[] } } };
  doc_string?: string;
}
export interface GraphProto {
  name: string;
  node: NodeProto[];
  initializer: TensorProto[];
  input: ValueInfoProto[];
  output: ValueInfoProto[];
  doc_string?: string;
}

const utf8 = new TextEncoder();

function elementCount(dims: readonly number[]): number {
  return dims.reduce((a, b) => a * b, 1);
}

function checkCount(name: string, dims: readonly number[], length: number): void {
  if (elementCount(dims) !== length) {
    throw new Error(`tensor ${name}: dims [${dims.join(', ')}] need ${elementCount(dims)} values, got ${length}`);
  }
}

/** float32 tensor stored as little-endian raw_data (what the ONNX spec mandates for raw_data). */
export function floatTensor(name: string, dims: number[], values: ArrayLike<number>): TensorProto {
  checkCount(name, dims, values.length);
  const bytes = new Uint8Array(values.length * 4);
  const view = new DataView(bytes.buffer);
  for (let i = 0; i < values.length; i++) view.setFloat32(i * 4, values[i]!, true);
  return { name, data_type: DataType.FLOAT, dims, raw_data: bytes };
}

/** int64 tensor (e.g. Gather indices, Reshape shapes) as little-endian raw_data. */
export function int64Tensor(name: string, dims: number[], values: ArrayLike<number | bigint>): TensorProto {
  checkCount(name, dims, values.length);
  const bytes = new Uint8Array(values.length * 8);
  const view = new DataView(bytes.buffer);
  for (let i = 0; i < values.length; i++) view.setBigInt64(i * 8, BigInt(values[i]!), true);
  return { name, data_type: DataType.INT64, dims, raw_data: bytes };
}

/** int32 tensor as little-endian raw_data. */
export function int32Tensor(name: string, dims: number[], values: ArrayLike<number>): TensorProto {
  checkCount(name, dims, values.length);
  const bytes = new Uint8Array(values.length * 4);
  const view = new DataView(bytes.buffer);
  for (let i = 0; i < values.length; i++) view.setInt32(i * 4, values[i]!, true);
  return { name, data_type: DataType.INT32, dims, raw_data: bytes };
}

/** uint8 tensor (e.g. quantised lookup tables) as raw_data, one byte per value. */
export function uint8Tensor(name: string, dims: number[], values: ArrayLike<number>): TensorProto {
  checkCount(name, dims, values.length);
  const bytes = new Uint8Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (!Number.isInteger(v) || v < 0 || v > 255) throw new Error(`tensor ${name}: ${v} is not a uint8`);
    bytes[i] = v;
  }
  return { name, data_type: DataType.UINT8, dims, raw_data: bytes };
}

/** Graph input/output declaration; string dims become symbolic (dim_param), null dims unnamed. */
export function valueInfo(name: string, elemType: DataTypeCode, shape: Dim[], docString?: string): ValueInfoProto {
  const dim = shape.map((d): DimensionProto => (d === null ? {} : typeof d === 'string' ? { dim_param: d } : { dim_value: d }));
  return { name, type: { tensor_type: { elem_type: elemType, shape: { dim } } }, ...(docString ? { doc_string: docString } : {}) };
}

/** Attribute constructors, one per AttributeProto kind. */
export const attr = {
  float: (name: string, f: number): AttributeProto => ({ name, type: AttributeType.FLOAT, f }),
  int: (name: string, i: number): AttributeProto => ({ name, type: AttributeType.INT, i }),
  string: (name: string, s: string): AttributeProto => ({ name, type: AttributeType.STRING, s: utf8.encode(s) }),
  tensor: (name: string, t: TensorProto): AttributeProto => ({ name, type: AttributeType.TENSOR, t }),
  floats: (name: string, floats: number[]): AttributeProto => ({ name, type: AttributeType.FLOATS, floats }),
  ints: (name: string, ints: number[]): AttributeProto => ({ name, type: AttributeType.INTS, ints }),
  strings: (name: string, strings: string[]): AttributeProto => ({
    name,
    type: AttributeType.STRINGS,
    strings: strings.map((s) => utf8.encode(s)),
  }),
};

/** One operator; `name` defaults to the first output so every node is identifiable. */
export function node(
  opType: string,
  inputs: string[],
  outputs: string[],
  attributes: AttributeProto[] = [],
  name: string = outputs[0] ?? opType,
): NodeProto {
  return { op_type: opType, input: inputs, output: outputs, name, ...(attributes.length ? { attribute: attributes } : {}) };
}

export interface ModelOptions {
  graph: GraphProto;
  producerName: string;
  producerVersion?: string;
  docString?: string;
  /** Defaults to 8 (ONNX 1.10+; supported by every current onnxruntime). */
  irVersion?: number;
  /** Defaults to the default domain "" at opset 13. */
  opsetImports?: { domain: string; version: number }[];
  /** Written as metadata_props in insertion order. */
  metadata?: Record<string, string>;
}

/** Serialise a ModelProto. Throws if the object does not match the schema. */
export function encodeModel(opts: ModelOptions): Uint8Array {
  const model = {
    ir_version: opts.irVersion ?? 8,
    producer_name: opts.producerName,
    ...(opts.producerVersion ? { producer_version: opts.producerVersion } : {}),
    ...(opts.docString ? { doc_string: opts.docString } : {}),
    graph: opts.graph,
    opset_import: opts.opsetImports ?? [{ domain: '', version: 13 }],
    metadata_props: Object.entries(opts.metadata ?? {}).map(([key, value]) => ({ key, value })),
  };
  const message = ModelProtoType.fromObject(model);
  const problem = ModelProtoType.verify(message);
  if (problem) throw new Error(`invalid ModelProto: ${problem}`);
  return ModelProtoType.encode(message).finish();
}

/** Decode bytes written by encodeModel (int64 as numbers, bytes as Uint8Array); for tests and inspection. */
export function decodeModel(bytes: Uint8Array): Record<string, unknown> {
  return ModelProtoType.toObject(ModelProtoType.decode(bytes), { longs: Number, defaults: false, arrays: true });
}
