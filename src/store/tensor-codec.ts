import { DATATYPES, toNumbers } from '../inference/datatypes.ts';
import type { TensorData } from '../inference/types.ts';

/**
 * A tensor as the history stores it: `data` as JSON numbers, or `base64`: the elements'
 * bytes at the datatype's width, little-endian. Outputs are stored as bytes: exact (they
 * come from typed arrays) and a quarter of the size of their decimal text (an FP32 output
 * printed as a double takes ~18 characters). Inputs stay JSON numbers: stored as sent.
 */
export interface StoredTensor {
  name: string;
  datatype: TensorData['datatype'];
  shape: number[];
  data?: number[];
  base64?: string;
}

export function encodeAsBytes(tensors: readonly TensorData[]): StoredTensor[] {
  return tensors.map(({ name, datatype, shape, data }) => {
    const typed = DATATYPES[datatype].create(data) as ArrayBufferView;
    return { name, datatype, shape, base64: Buffer.from(typed.buffer, typed.byteOffset, typed.byteLength).toString('base64') };
  });
}

/** Stored tensors back as numbers; reads both forms. */
export function decodeTensors(stored: readonly StoredTensor[]): TensorData[] {
  return stored.map(({ name, datatype, shape, data, base64 }) => {
    if (base64 === undefined) return { name, datatype, shape, data: data ?? [] };
    const bytes = Buffer.from(base64, 'base64');
    // A fresh, aligned buffer: Buffer's pool offsets need not be multiples of 8.
    const aligned = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
    const Typed = (DATATYPES[datatype].create([]) as unknown as { constructor: new (buffer: ArrayBuffer) => ArrayLike<number> }).constructor;
    return { name, datatype, shape, data: toNumbers(new Typed(aligned) as never) };
  });
}
