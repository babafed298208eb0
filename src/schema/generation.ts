import { z } from 'zod';
import { noteOperation } from '../observability/use-operation-log.ts';
import type { PredictionRecord } from '../serving/records.ts';
import type { GenerateInput, GenerationEvent, GenerationResult } from '../serving/generate.ts';
import { builder } from './builder.ts';
import { generateCost } from './cost.ts';
import { FinishReasonEnum, PredictionRef } from './prediction.ts';

const MAX_PROMPT = 2000;

const GenerateInputRef = builder.inputType('GenerateInput', {
  description: 'A text generation request for a GENERATOR model.',
  fields: (t) => ({
    model: t.string({ required: true, description: 'Model name (kind GENERATOR).' }),
    version: t.int({ description: "Version to run; default: the model's default version." }),
    prompt: t.string({
      required: true,
      description: `Text to continue, 1 to ${MAX_PROMPT} characters, every character in the model's vocabulary.`,
    }),
    maxTokens: t.int({
      defaultValue: 64,
      description: 'Tokens to generate at most, 1 to 512.',
    }),
    temperature: t.float({
      defaultValue: 1.0,
      description: 'Sampling temperature, 0 to 2; 0 always takes the most likely token (greedy).',
    }),
    topK: t.int({
      description: 'Sample only among the k most likely tokens (k >= 1).',
    }),
    seed: t.int({
      description: 'Random seed: the same seed, prompt and settings give the same text. Default: a random one, stored with the prediction.',
    }),
    stop: t.stringList({
      description: 'Stop when one of these (up to 8, each 1 to 64 characters) appears; it is cut from the text.',
    }),
  }),
  // One schema for the whole input, so every problem is reported at once.
  validate: z.looseObject({
    prompt: z
      .string()
      .min(1, { error: `expected 1 to ${MAX_PROMPT} characters` })
      .max(MAX_PROMPT, { error: `expected 1 to ${MAX_PROMPT} characters` }),
    maxTokens: z
      .number()
      .int({ error: 'expected an integer from 1 to 512' })
      .min(1, { error: 'expected an integer from 1 to 512' })
      .max(512, { error: 'expected an integer from 1 to 512' })
      .nullish(),
    temperature: z.number().min(0, { error: 'expected a number from 0 to 2' }).max(2, { error: 'expected a number from 0 to 2' }).nullish(),
    topK: z.number().int().min(1, { error: 'expected an integer of at least 1' }).nullish(),
    seed: z.number().int().min(0, { error: 'expected an integer >= 0' }).nullish(),
    stop: z
      .array(z.string().min(1, { error: 'expected 1 to 64 characters' }).max(64, { error: 'expected 1 to 64 characters' }))
      .max(8, { error: 'expected at most 8 stop sequences' })
      .nullish(),
  }),
});

/** An explicit null takes the default too. */
/** The operation's log line gets the version that decoded and the tokens it made. */
const noteGeneration = (ctx: object, prediction: PredictionRecord) =>
  noteOperation(ctx, { model: prediction.modelName, version: prediction.version, tokens: prediction.generation?.tokens });

const withDefaults = (input: typeof GenerateInputRef.$inferInput): GenerateInput => ({
  ...input,
  maxTokens: input.maxTokens ?? 64,
  temperature: input.temperature ?? 1,
});

const GenerationEventRef = builder.objectRef<GenerationEvent>('GenerationEvent').implement({
  description: 'One step of a streamed generation: a token, then a final event with `done: true`.',
  fields: (t) => ({
    index: t.exposeInt('index', { description: 'Position of the token among the generated tokens (the final event: their count).' }),
    token: t.exposeString('token', { description: 'The new token ("" in the final event).' }),
    text: t.exposeString('text', {
      description: 'Text generated so far. In the final event, the whole text with any stop sequence cut off.',
    }),
    done: t.exposeBoolean('done', { description: 'True on the final event only.' }),
    finishReason: t.field({
      type: FinishReasonEnum,
      nullable: true,
      description: 'Final event: why decoding ended.',
      resolve: (e) => e.finishReason,
    }),
    predictionId: t.id({
      nullable: true,
      description: 'Final event: id of the stored prediction (read it with `prediction(id:)`).',
      resolve: (e) => e.predictionId,
    }),
  }),
});

const GenerationRef = builder.objectRef<GenerationResult>('Generation').implement({
  description: 'A whole generation, for clients that cannot subscribe.',
  fields: (t) => ({
    text: t.exposeString('text', { description: 'The generated text (without the prompt or any stop sequence).' }),
    tokens: t.exposeInt('tokens', { description: 'Tokens generated.' }),
    finishReason: t.field({ type: FinishReasonEnum, description: 'Why decoding ended.', resolve: (g) => g.finishReason }),
    prediction: t.field({
      type: PredictionRef,
      nullable: true,
      description: 'The stored prediction.',
      resolve: (g) => g.prediction,
    }),
  }),
});

builder.subscriptionFields((t) => ({
  generate: t.field({
    type: GenerationEventRef,
    description:
      'Streams a generation token by token, then a final event (done, finishReason, predictionId). Unsubscribing stops decoding before the next token.',
    authScopes: { predict: true },
    args: { input: t.arg({ type: GenerateInputRef, required: true, description: 'What to generate.' }) },
    complexity: (args) => generateCost(args.input),
    subscribe: (_root, { input }, ctx) => {
      noteOperation(ctx, { model: input.model, version: input.version ?? undefined });
      return ctx.generationService.stream({ ...withDefaults(input), apiKeyId: ctx.principal.keyId });
    },
    resolve: (event, _args, ctx) => {
      if (event.prediction) noteGeneration(ctx, event.prediction);
      return event;
    },
  }),
}));

builder.mutationFields((t) => ({
  generate: t.field({
    type: GenerationRef,
    description: 'The same decoding as the `generate` subscription, answered once with the whole text.',
    authScopes: { predict: true },
    args: { input: t.arg({ type: GenerateInputRef, required: true, description: 'What to generate.' }) },
    complexity: (args) => generateCost(args.input),
    resolve: async (_root, { input }, ctx) => {
      noteOperation(ctx, { model: input.model, version: input.version ?? undefined });
      const result = await ctx.generationService.complete({ ...withDefaults(input), apiKeyId: ctx.principal.keyId });
      if (result.prediction) noteGeneration(ctx, result.prediction);
      return result;
    },
  }),
}));
