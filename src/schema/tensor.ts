import { TENSOR_DATATYPES } from '../inference/datatypes.ts';
import type { TensorData, TensorSpec } from '../inference/types.ts';
import { builder } from './builder.ts';

const NUMBERS_NOTE =
  'Values travel as JSON numbers in row-major order; integer types (INT64 included) are exact only up to 2^53, BOOL is 0 or 1.';

export const TensorDatatypeEnum = builder.enumType('TensorDatatype', {
  description: 'Element type of a tensor (Open Inference Protocol names).',
  values: Object.fromEntries(
    TENSOR_DATATYPES.map((name) => [
      name,
      {
        description: {
          BOOL: 'Boolean, sent as 0 or 1.',
          UINT8: 'Unsigned 8-bit integer.',
          INT8: 'Signed 8-bit integer.',
          INT16: 'Signed 16-bit integer.',
          INT32: 'Signed 32-bit integer.',
          INT64: 'Signed 64-bit integer; exact as a JSON number only up to 2^53.',
          FP32: '32-bit float.',
          FP64: '64-bit float.',
        }[name],
      },
    ]),
  ) as Record<(typeof TENSOR_DATATYPES)[number], { description: string }>,
});

export const TensorRef = builder.objectRef<TensorData>('Tensor').implement({
  description: `A named tensor. ${NUMBERS_NOTE}`,
  fields: (t) => ({
    name: t.exposeString('name', { description: 'Input or output name, as the model declares it.' }),
    datatype: t.field({ type: TensorDatatypeEnum, description: 'Element type.', resolve: (x) => x.datatype }),
    shape: t.exposeIntList('shape', { description: 'Dimensions, outermost first.' }),
    data: t.exposeFloatList('data', { description: `The elements. ${NUMBERS_NOTE}` }),
  }),
});

export const TensorInputRef = builder.inputType('TensorInput', {
  description: `One input tensor, Open Inference Protocol style. ${NUMBERS_NOTE}`,
  fields: (t) => ({
    name: t.string({ required: true, description: "The model input's name (see `ModelVersion.inputs`)." }),
    datatype: t.field({ type: TensorDatatypeEnum, required: true, description: "Must equal the input's datatype." }),
    shape: t.intList({
      required: true,
      description: "Concrete dimensions; must match the input's shape where that is not -1.",
    }),
    data: t.floatList({ required: true, description: `Exactly product(shape) elements. ${NUMBERS_NOTE}` }),
  }),
});

export const TensorSpecRef = builder.objectRef<TensorSpec>('TensorSpec').implement({
  description: 'An input or output as the ONNX session reports it.',
  fields: (t) => ({
    name: t.exposeString('name', { description: 'Name to use in `TensorInput.name`.' }),
    datatype: t.field({ type: TensorDatatypeEnum, description: 'Element type.', resolve: (x) => x.datatype }),
    shape: t.exposeIntList('shape', { description: 'Dimensions; -1 marks a dynamic dimension (any size).' }),
    dimNames: t.stringList({
      nullable: { list: true, items: true },
      description:
        'The symbolic name of each dimension as the model declares it (e.g. `batch`); null for a fixed or unnamed one. Batching is on without a model.json `batching` key only when every input and output has the same first dimension name.',
      resolve: (x) => x.dimNames,
    }),
    featureNames: t.stringList({
      nullable: true,
      description: "Column names of a tabular input, from the model's manifest.",
      resolve: (x) => x.featureNames ?? null,
    }),
  }),
});
