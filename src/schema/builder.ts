import SchemaBuilder from '@pothos/core';
import ScopeAuthPlugin, { type AuthFailure } from '@pothos/plugin-scope-auth';
import ComplexityPlugin from '@pothos/plugin-complexity';
import ValidationPlugin from '@pothos/plugin-validation';
import { DateTimeResolver } from 'graphql-scalars';
import { hasScope, type Principal, type Scope } from '../auth/principal.ts';
import { BadUserInputError, ForbiddenError } from '../errors.ts';
import type { ModelRepository } from '../inference/repository.ts';
import type { GenerationService } from '../serving/generate.ts';
import type { PredictionService } from '../serving/predict.ts';
import type { EventBus } from '../pubsub/event-bus.ts';
import type { Loaders } from '../store/loaders.ts';
import type { TensorVariables } from '../transport/use-tensor-variables.ts';
import type { Uploads } from '../transport/multipart-upload.ts';
import type { PredictionStore } from '../serving/prediction-store.ts';
import type { BatchJobStore } from '../serving/batch-job-store.ts';
import type { BatchJobService } from '../serving/batch-jobs.ts';
import type { FeedbackService } from '../serving/feedback.ts';
import type { TrafficRouter } from '../inference/traffic.ts';
import type { ShadowTraffic } from '../serving/shadow.ts';

/** What every resolver gets; built per request in app.ts. */
export interface Context {
  requestId: string;
  models: ModelRepository;
  predictions: PredictionStore;
  predictionService: PredictionService;
  batchJobs: BatchJobService;
  batchJobStore: BatchJobStore;
  generationService: GenerationService;
  /** Ground truth for predictions and the live quality computed from it. */
  feedback: FeedbackService;
  /** Traffic splits between model versions and their rollout guards (this process's). */
  traffic: TrafficRouter;
  /** Shadow traffic: which model is shadowed by which version, and the comparison of stored pairs. */
  shadow: ShadowTraffic;
  bus: EventBus;
  loaders: Loaders;
  /** Big Float lists of this operation's variables (see transport/use-tensor-variables.ts). */
  tensorVariables: TensorVariables;
  /** Files sent with a GraphQL multipart request, by the tokens in variables (see transport/multipart-upload.ts). */
  uploads: Uploads;
  /** Where the request came from (the socket's peer, or the proxy's X-Forwarded-For with TRUST_PROXY): anonymous callers' rate-limit key. */
  clientAddress: string;
  /**
   * Who is calling (auth/principal.ts): resolved once per HTTP request or WebSocket
   * connection; ANONYMOUS (every scope) when AUTH_MODE=off. Fields declare the scope they
   * need with `authScopes`; readers filter by `ownerOf(principal)`.
   */
  principal: Principal;
}

/** The scopes a failed check asked for, for the FORBIDDEN message. */
function scopesOf(failure: AuthFailure): string[] {
  if ('failures' in failure) return failure.failures.flatMap(scopesOf);
  return 'scope' in failure ? [failure.scope] : [];
}

export const builder = new SchemaBuilder<{
  Context: Context;
  Scalars: {
    DateTime: { Input: Date; Output: Date };
    /** An upload's token (transport/multipart-upload.ts); resolvers trade it for the file with `ctx.uploads.take`. */
    File: { Input: string; Output: never };
  };
  DefaultFieldNullability: false;
  /** One boolean per scope of the caller's key (admin includes predict and read). */
  AuthScopes: Record<Scope, boolean>;
}>({
  // Fields are non-null unless they say `nullable: true`: the contract spells out every nullable one.
  defaultFieldNullability: false,
  // Scope checks first: a caller without the scope learns nothing, not even argument errors.
  plugins: [ScopeAuthPlugin, ValidationPlugin, ComplexityPlugin],
  scopeAuth: {
    // Subscriptions are checked when they start (a refusal before the first event), not per event.
    authorizeOnSubscribe: true,
    authScopes: (ctx) => ({
      predict: hasScope(ctx.principal, 'predict'),
      read: hasScope(ctx.principal, 'read'),
      admin: hasScope(ctx.principal, 'admin'),
    }),
    unauthorizedError: (_parent, _ctx, info, result) => new ForbiddenError(`${info.parentType.name}.${info.fieldName}`, [...new Set(scopesOf(result.failure))]),
  },
  // Fields declare their cost (schema/cost.ts); transport/use-cost-limit.ts checks the total
  // before execution, with the variables. The plugin's own check runs inside the root
  // resolvers, too late for a 400, so it is off.
  complexity: { disabled: true },
  validation: {
    // Argument validation failures become BAD_USER_INPUT with every issue listed.
    validationError: (failure) =>
      new BadUserInputError(
        failure.issues.map((issue) => ({
          path: (issue.path ?? []).map((p) => {
            const key = typeof p === 'object' ? p.key : p;
            return typeof key === 'number' ? key : String(key);
          }),
          message: issue.message,
        })),
      ),
  },
});

builder.addScalarType('DateTime', DateTimeResolver, {});
builder.queryType({ description: 'Read the model repository and the prediction history.' });
builder.mutationType({ description: 'Run models.' });
builder.subscriptionType({ description: 'Streams, over SSE (GraphQL over SSE) or WebSocket (graphql-transport-ws) on /graphql.' });
