import type { Manifest } from './manifest.ts';
import type { TensorSpec } from './types.ts';

/**
 * One key or value cache of a "decoder with past" export (Hugging Face Optimum): input
 * `past_key_values.<rest>` and output `present.<rest>`, both [batch, heads, length, headDim],
 * where `heads` and `headDim` are the input's static dimensions.
 */
export interface CacheTensor {
  past: string;
  present: string;
  heads: number;
  headDim: number;
}

/** How a GENERATOR version is driven, read from its session's inputs and outputs. */
export interface GeneratorInterface {
  logits: string;
  /** The manifest's vocabulary length: the width the logits must have. */
  vocabularySize: number;
  attentionMask: boolean;
  positionIds: boolean;
  /** Empty: no cache, every step runs the whole context. */
  cache: CacheTensor[];
  /** Static sequence length of `input_ids` (the context limit of a model without a cache), else -1. */
  contextLength: number;
}

const PAST = 'past_key_values.';
const KNOWN = 'input_ids, attention_mask, position_ids, past_key_values.*';

const isStatic = (d: number | undefined): d is number => typeof d === 'number' && d >= 1;
const shapeText = (spec: TensorSpec) => `[${spec.shape.map((d) => (d === -1 ? '?' : d)).join(', ')}]`;

/**
 * The Hugging Face causal-LM interface of a GENERATOR, or an Error saying why the version
 * cannot be served:
 * - `input_ids` int64 [batch, sequence]; optional `attention_mask` and `position_ids`, int64;
 *   no other inputs apart from the cache;
 * - output `logits` (or the manifest's `output`), float, whose static last dimension equals the
 *   vocabulary's length (a dynamic one is checked on each run, see causal-lm.ts);
 * - cache: every `past_key_values.<rest>` input is float32 [batch, heads, past_length, head_dim]
 *   with static heads and head_dim (the first step's empty cache is built from them) and has an
 *   output `present.<rest>`.
 */
export function describeGenerator(manifest: Manifest, inputs: readonly TensorSpec[], outputs: readonly TensorSpec[]): GeneratorInterface {
  if (!manifest.vocabulary) throw new Error('model.json: a GENERATOR needs a `vocabulary`');
  const vocabularySize = manifest.vocabulary.length;
  const ids = inputs.find((i) => i.name === 'input_ids');
  if (!ids || ids.datatype !== 'INT64' || ids.shape.length !== 2) {
    throw new Error(`a GENERATOR needs an input \`input_ids\` int64 [batch, sequence]${ids ? `; the model has ${ids.datatype} ${shapeText(ids)}` : ''}`);
  }
  const logitsName = manifest.output ?? 'logits';
  const logits = outputs.find((o) => o.name === logitsName);
  if (!logits || (logits.datatype !== 'FP32' && logits.datatype !== 'FP64')) {
    throw new Error(`a GENERATOR needs a float output \`${logitsName}\` [batch, sequence, vocabulary] (model.json \`output\` names another)`);
  }
  const width = logits.shape.at(-1);
  if (isStatic(width) && width !== vocabularySize) {
    throw new Error(`model.json lists ${vocabularySize} vocabulary entries but output \`${logitsName}\` has ${width} (its last dimension)`);
  }

  const cache: CacheTensor[] = [];
  for (const input of inputs) {
    if (input.name === 'input_ids') continue;
    if (input.name === 'attention_mask' || input.name === 'position_ids') {
      if (input.datatype !== 'INT64') throw new Error(`input \`${input.name}\` must be int64, the model has ${input.datatype}`);
      continue;
    }
    if (!input.name.startsWith(PAST)) {
      throw new Error(`input \`${input.name}\` is not part of the causal-LM interface the gateway drives (${KNOWN})`);
    }
    const [, heads, , headDim] = input.shape;
    if (input.datatype !== 'FP32' || input.shape.length !== 4 || !isStatic(heads) || !isStatic(headDim)) {
      throw new Error(
        `input \`${input.name}\` must be float32 [batch, heads, past_length, head_dim] with static heads and head_dim ` +
          `(they size the first step's empty cache); the model has ${input.datatype} ${shapeText(input)}`,
      );
    }
    const present = `present.${input.name.slice(PAST.length)}`;
    if (!outputs.some((o) => o.name === present)) throw new Error(`input \`${input.name}\` has no matching output \`${present}\``);
    cache.push({ past: input.name, present, heads, headDim });
  }
  return {
    logits: logitsName,
    vocabularySize,
    attentionMask: inputs.some((i) => i.name === 'attention_mask'),
    positionIds: inputs.some((i) => i.name === 'position_ids'),
    cache,
    contextLength: isStatic(ids.shape[1]) ? ids.shape[1] : -1,
  };
}

/** Load-time check: a GENERATOR version whose interface cannot be served is FAILED with the reason. */
export function checkGenerator(manifest: Manifest, shapes: { inputs: readonly TensorSpec[]; outputs: readonly TensorSpec[] }): void {
  if (manifest.kind === 'GENERATOR') describeGenerator(manifest, shapes.inputs, shapes.outputs);
}
