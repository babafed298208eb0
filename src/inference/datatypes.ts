import type { Tensor as OrtTensor } from 'onnxruntime-node';

/** The tensor element types the gateway serves (Open Inference Protocol names). */
export const TENSOR_DATATYPES = ['BOOL', 'UINT8', 'INT8', 'INT16', 'INT32', 'INT64', 'FP32', 'FP64'] as const;
export type TensorDatatype = (typeof TENSOR_DATATYPES)[number];

type OrtType = OrtTensor.Type;

interface DatatypeInfo {
  ort: OrtType;
  /** Integer types (and BOOL) accept only whole numbers; every type only values within [min, max]. */
  integer: boolean;
  min: number;
  max: number;
  create(values: readonly number[]): OrtTensor.DataType;
}

const float = (ort: OrtType, Ctor: Float32ArrayConstructor | Float64ArrayConstructor, max: number): DatatypeInfo => ({
  ort,
  integer: false,
  min: -max,
  max,
  create: (values) => Ctor.from(values),
});

type IntArrayCtor = Uint8ArrayConstructor | Int8ArrayConstructor | Int16ArrayConstructor | Int32ArrayConstructor;
const int = (ort: OrtType, Ctor: IntArrayCtor, min: number, max: number): DatatypeInfo => ({
  ort,
  integer: true,
  min,
  max,
  create: (values) => Ctor.from(values),
});

export const DATATYPES: Record<TensorDatatype, DatatypeInfo> = {
  BOOL: { ...int('bool', Uint8Array, 0, 1) },
  UINT8: int('uint8', Uint8Array, 0, 255),
  INT8: int('int8', Int8Array, -128, 127),
  INT16: int('int16', Int16Array, -32768, 32767),
  INT32: int('int32', Int32Array, -2147483648, 2147483647),
  // INT64 travels as a JSON number, exact only up to 2^53.
  INT64: {
    ort: 'int64',
    integer: true,
    min: Number.MIN_SAFE_INTEGER,
    max: Number.MAX_SAFE_INTEGER,
    create: (values) => BigInt64Array.from(values, (v) => BigInt(v)),
  },
  // Beyond FP32's largest finite value a number would become Infinity in the tensor.
  FP32: float('float32', Float32Array, 3.4028234663852886e38),
  FP64: float('float64', Float64Array, Number.MAX_VALUE),
};

const BY_ORT = new Map<string, TensorDatatype>(
  TENSOR_DATATYPES.map((datatype) => [DATATYPES[datatype].ort, datatype]),
);

/** The gateway datatype for an onnxruntime type name, or undefined when it is not served. */
export function datatypeFromOrt(type: string): TensorDatatype | undefined {
  return BY_ORT.get(type);
}

/** Tensor data as plain numbers (int64 beyond 2^53 loses precision, as documented in the schema). */
export function toNumbers(data: OrtTensor.DataType): number[] {
  if (Array.isArray(data)) return data.map(Number);
  // An index loop into a sized array: Array.from over a typed array allocates an iterator
  // result per element (tens of MB of garbage for a big output).
  const source = data as ArrayLike<number | bigint | boolean>;
  const out = new Array<number>(source.length);
  for (let i = 0; i < source.length; i++) out[i] = Number(source[i]);
  return out;
}
