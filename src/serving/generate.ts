import { randomInt } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { newId } from './ids.ts';
import { BadUserInputError, ModelNotReadyError, ServiceUnavailableError, TooManyRequestsError, type InputIssue } from '../errors.ts';
import type { ModelRepository } from '../inference/repository.ts';
import type { ServedVersion } from '../inference/types.ts';
import { createCausalLm, LogitsWidthError } from '../inference/causal-lm.ts';
import { describeGenerator, type GeneratorInterface } from '../inference/generator-interface.ts';
import { sampleToken, seededRandom } from '../inference/sampling.ts';
import { Tokenizer } from '../inference/tokenizer.ts';
import type { History } from './history.ts';
import type { FinishReason, PredictionRecord } from './records.ts';

export interface GenerateInput {
  model: string;
  version?: number | null;
  prompt: string;
  maxTokens: number;
  temperature: number;
  topK?: number | null;
  seed?: number | null;
  stop?: readonly string[] | null;
  /** The API key making it (stored with the row); null or absent when auth is off. */
  apiKeyId?: string | null;
}

/** One streamed step: a token, or (done) the end with the stored prediction's id. */
export interface GenerationEvent {
  index: number;
  token: string;
  /** The text generated so far; in the final event, the whole text without any stop sequence. */
  text: string;
  done: boolean;
  finishReason: FinishReason | null;
  predictionId: string | null;
  /** The stored prediction, on the final event (not part of the GraphQL event type). */
  prediction?: PredictionRecord;
}

export interface GenerationResult {
  text: string;
  tokens: number;
  finishReason: FinishReason;
  prediction: PredictionRecord | null;
}

export interface GenerationServiceOptions {
  models: ModelRepository;
  history: History;
  /** Generations decoding at once; more get TOO_MANY_REQUESTS. */
  maxConcurrent: number;
}

export type GenerationService = ReturnType<typeof createGenerationService>;

interface Plan {
  version: ServedVersion;
  tokenizer: Tokenizer;
  promptIds: number[];
  generator: GeneratorInterface;
  input: GenerateInput;
  seed: number;
}

/**
 * Autoregressive decoding of GENERATOR models, one ONNX run per token through the Hugging
 * Face causal-LM interface (inference/causal-lm.ts drives the model, with a KV cache when
 * it has one); this service samples, streams, stops and stores. Generations interleave
 * token by token on the event loop, so none blocks another or a `predict`.
 */
export function createGenerationService(options: GenerationServiceOptions) {
  const { models, history, maxConcurrent } = options;
  let closing = false;
  /** One promise per generation holding a slot; settles when the slot is released. */
  const running = new Set<Promise<void>>();

  function plan(input: GenerateInput): Plan {
    const version = models.resolve(input.model, input.version);
    const { manifest } = version;
    if (manifest.kind !== 'GENERATOR') {
      throw new BadUserInputError([{ path: ['input', 'model'], message: `model \`${version.name}\` is not a GENERATOR` }]);
    }
    // Checked at load (repository.ts), so a READY GENERATOR always has a servable interface.
    const generator = describeGenerator(manifest, version.inputs, version.outputs);
    const issues: InputIssue[] = [];
    const tokenizer = new Tokenizer(manifest.vocabulary!);
    const { ids, unknown } = tokenizer.encode(input.prompt);
    if (unknown.length > 0) {
      const listed = unknown.slice(0, 10).map((u) => `${JSON.stringify(u.char)} at ${u.index}`).join(', ');
      issues.push({ path: ['input', 'prompt'], message: `characters not in the vocabulary of \`${version.name}\`: ${listed}${unknown.length > 10 ? ', …' : ''}` });
    }
    if (ids.length === 0 && unknown.length === 0) issues.push({ path: ['input', 'prompt'], message: 'the prompt must hold at least one token' });
    const context = generator.contextLength;
    if (context !== -1 && generator.cache.length === 0 && ids.length + input.maxTokens > context) {
      issues.push({ path: ['input', 'maxTokens'], message: `prompt (${ids.length} tokens) plus maxTokens exceeds the model's context of ${context}` });
    }
    if (issues.length > 0) throw new BadUserInputError(issues);
    return {
      version,
      tokenizer,
      promptIds: ids,
      generator,
      input,
      seed: input.seed ?? randomInt(0, 2 ** 31),
    };
  }

  async function* decode(p: Plan): AsyncGenerator<GenerationEvent, void, undefined> {
    const started = performance.now();
    const { input, tokenizer } = p;
    const random = seededRandom(p.seed);
    const model = createCausalLm(p.version, p.generator);
    const generated: number[] = [];
    const stops = (input.stop ?? []).filter((s) => s.length > 0);
    let text = '';
    let finishReason: FinishReason | undefined;

    while (finishReason === undefined) {
      if (closing) {
        finishReason = 'CANCELLED';
        break;
      }
      const logits = await failOnWidth(p.version, generated.length === 0 ? model.start(p.promptIds) : model.next(generated.at(-1)!));
      const next = sampleToken(logits, input, random);
      generated.push(next);
      const token = tokenizer.vocabulary[next] ?? '';
      text += token;
      const stopAt = firstStop(text, stops);
      if (stopAt !== -1) {
        text = text.slice(0, stopAt);
        finishReason = 'STOP';
      } else if (generated.length >= input.maxTokens) {
        finishReason = 'LENGTH';
      }
      yield { index: generated.length - 1, token, text, done: false, finishReason: null, predictionId: null };
    }

    const record: PredictionRecord = {
      id: newId(),
      modelName: p.version.name,
      version: p.version.version,
      createdAt: new Date(),
      latencyMs: performance.now() - started,
      inputs: [{ name: 'input_ids', datatype: 'INT64', shape: [1, p.promptIds.length], data: p.promptIds }],
      outputs: [{ name: 'output_ids', datatype: 'INT64', shape: [1, generated.length], data: generated }],
      interpretation: { kind: 'GENERATOR', output: p.generator.logits, labels: null },
      apiKeyId: input.apiKeyId ?? null,
      outcome: { label: null, scores: null, value: null },
      generation: {
        prompt: input.prompt,
        text,
        finishReason,
        tokens: generated.length,
        parameters: { maxTokens: input.maxTokens, temperature: input.temperature, topK: input.topK ?? null, seed: p.seed, stop: stops },
      },
    };
    await history.append(record);
    yield { index: generated.length, token: '', text, done: true, finishReason, predictionId: record.id, prediction: record };
  }

  /** A generator whose logits do not fit its vocabulary cannot be served: the version becomes FAILED. */
  async function failOnWidth<T>(version: ServedVersion, step: Promise<T>): Promise<T> {
    try {
      return await step;
    } catch (error) {
      if (!(error instanceof LogitsWidthError)) throw error;
      void models.fail(version.name, version.version, error.message).catch(() => undefined);
      throw new ModelNotReadyError(version.name, version.version, 'FAILED', error.message);
    }
  }

  return {
    /**
     * Checks the request and takes a decoding slot (throwing BAD_USER_INPUT,
     * MODEL_NOT_FOUND/READY or TOO_MANY_REQUESTS before any event), then streams.
     * Returning the iterator (client gone) stops decoding before the next ONNX run
     * and stores nothing; a finished generation is stored before its final event.
     */
    stream(input: GenerateInput): AsyncIterableIterator<GenerationEvent> {
      if (closing) throw new ServiceUnavailableError();
      const p = plan(input);
      if (running.size >= maxConcurrent) throw new TooManyRequestsError('generations', maxConcurrent);
      let release!: () => void;
      const slot = new Promise<void>((resolve) => (release = resolve));
      running.add(slot);
      void slot.then(() => running.delete(slot));
      const inner = decode(p);
      const iterator: AsyncIterableIterator<GenerationEvent> = {
        async next() {
          try {
            const step = await inner.next();
            if (step.done) release();
            return step;
          } catch (error) {
            release();
            throw error;
          }
        },
        async return() {
          // Not started: finishes at once. Suspended at a yield: finishes now. Mid-run: after that run.
          await inner.return(undefined);
          release();
          return { done: true, value: undefined };
        },
        [Symbol.asyncIterator]() {
          return this;
        },
      };
      return iterator;
    },

    /** The same decoding, drained: the whole text at once. */
    async complete(input: GenerateInput): Promise<GenerationResult> {
      let last: GenerationEvent | undefined;
      for await (const event of this.stream(input)) last = event;
      const prediction = last?.prediction ?? null;
      return { text: last?.text ?? '', tokens: prediction?.generation?.tokens ?? 0, finishReason: last?.finishReason ?? 'CANCELLED', prediction };
    },

    /** Generations holding a slot now. */
    get active(): number {
      return running.size;
    },

    /** Shutdown: refuse new generations, end running ones with CANCELLED (stored), wait for them. */
    async close(): Promise<void> {
      closing = true;
      await Promise.all(running);
    },
  };
}

function firstStop(text: string, stops: readonly string[]): number {
  let first = -1;
  for (const stop of stops) {
    const at = text.indexOf(stop);
    if (at !== -1 && (first === -1 || at < first)) first = at;
  }
  return first;
}
