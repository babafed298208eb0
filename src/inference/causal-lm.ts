import * as ort from 'onnxruntime-node';
import type { GeneratorInterface } from './generator-interface.ts';
import type { ServedVersion } from './types.ts';

/** One decoding session on a GENERATOR version: each call is one ONNX run and returns the last position's logits. */
export interface CausalLm {
  /** Runs the whole prompt (with an empty cache when the model has one). */
  start(promptIds: readonly number[]): Promise<ArrayLike<number>>;
  /** Appends one token: with a cache, runs that token alone; without, runs the whole context again. */
  next(tokenId: number): Promise<ArrayLike<number>>;
}

const int64 = (values: ArrayLike<number>) => BigInt64Array.from(values, (v) => BigInt(v));

/**
 * The feeds of one step: `newIds` at absolute positions `pastLength`.. (so `attention_mask`
 * is ones [1, pastLength + newIds.length] and `position_ids` [[pastLength, ...]]), and each
 * cache input from `presents` (the previous step's outputs) or, without them, empty
 * [1, heads, 0, headDim].
 */
export function stepFeeds(
  generator: GeneratorInterface,
  newIds: readonly number[],
  pastLength: number,
  presents?: Readonly<Record<string, ort.Tensor>>,
): Record<string, ort.Tensor> {
  const total = pastLength + newIds.length;
  const feeds: Record<string, ort.Tensor> = { input_ids: new ort.Tensor('int64', int64(newIds), [1, newIds.length]) };
  if (generator.attentionMask) feeds.attention_mask = new ort.Tensor('int64', new BigInt64Array(total).fill(1n), [1, total]);
  if (generator.positionIds) {
    feeds.position_ids = new ort.Tensor('int64', int64(newIds.map((_, i) => pastLength + i)), [1, newIds.length]);
  }
  for (const c of generator.cache) {
    const present = presents?.[c.present];
    if (presents && !present) throw new Error(`output \`${c.present}\` is missing from the previous step`);
    feeds[c.past] = present ?? new ort.Tensor('float32', new Float32Array(0), [1, c.heads, 0, c.headDim]);
  }
  return feeds;
}

/**
 * A logits width other than the vocabulary's, seen on a run (possible only when the model
 * declares it dynamic). The version cannot be served: whoever serves it reports it to the
 * registry (`fail`), as the load-time check would have.
 */
export class LogitsWidthError extends Error {
  override readonly name = 'LogitsWidthError';
}

/**
 * Decodes through the served version's `step` (so every run is counted). With a cache the
 * context is never fed again: step n runs one token with the n - 1 previous positions held
 * as presents. Throws LogitsWidthError when the logits do not fit the vocabulary.
 */
export function createCausalLm(version: Pick<ServedVersion, 'step'>, generator: GeneratorInterface): CausalLm {
  const ids: number[] = [];
  let presents: Record<string, ort.Tensor> | undefined;

  async function run(newIds: readonly number[], pastLength: number): Promise<ArrayLike<number>> {
    const results = await version.step(stepFeeds(generator, newIds, pastLength, presents));
    const logits = results[generator.logits]!;
    const width = logits.dims.at(-1);
    if (width !== generator.vocabularySize) {
      throw new LogitsWidthError(`model.json lists ${generator.vocabularySize} vocabulary entries but output \`${generator.logits}\` has ${width} (its last dimension)`);
    }
    if (generator.cache.length > 0) presents = Object.fromEntries(generator.cache.map((c) => [c.present, results[c.present]!]));
    const data = logits.data as Float32Array | Float64Array;
    return data.subarray(data.length - width);
  }

  return {
    start(promptIds) {
      ids.splice(0, ids.length, ...promptIds);
      presents = undefined;
      return run(ids, 0);
    },
    next(tokenId) {
      ids.push(tokenId);
      return generator.cache.length > 0 ? run([tokenId], ids.length - 1) : run(ids, 0);
    },
  };
}
