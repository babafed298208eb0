import { getOperationAST, GraphQLError, Kind, OperationTypeNode, print, type DocumentNode, type ExecutionResult } from 'graphql';
import type { Plugin } from 'graphql-yoga';
import { createSubscriberQueue, type SubscriberQueueStats } from '../pubsub/subscriber-queue.ts';

export interface SharedSubscriptionsOptions {
  /** Root subscription fields whose streams are the same for every subscriber (broadcasts), e.g. `predictionCreated`. Others (a generation) are never shared. */
  fields: readonly string[];
  /**
   * What else, besides document and variables, makes two subscriptions see different
   * streams (e.g. the caller's identity once results depend on it). @default none
   */
  scopeOf?: (context: unknown) => string;
  /** Results held per subscriber before the oldest are dropped. @default 1024 */
  maxEvents?: number;
  /** Approximate bytes held per subscriber before the oldest are dropped. @default 16 MiB */
  maxBytes?: number;
}

type Stream = AsyncIterableIterator<ExecutionResult>;

/** What is shared now (diagnostics and tests). */
export interface SharedSubscriptionStats {
  /** Shared executions running (one per distinct document, variables and scope). */
  executions: number;
  /** Each member's queue. */
  subscribers: SubscriberQueueStats[];
}

interface Channel {
  /** The one execution every member reads from; settles once it has started. */
  source: Promise<Stream | ExecutionResult>;
  members: Set<ReturnType<typeof createSubscriberQueue<ExecutionResult>>>;
}

const isStream = (value: unknown): value is Stream => typeof value === 'object' && value !== null && Symbol.asyncIterator in value;

/**
 * Subscriptions with the same document, operation and variables to a broadcast field
 * share one execution: each event is resolved once and its result handed to every
 * member, instead of once per subscriber (1,000 identical `predictionCreated`
 * subscriptions cost one execution per prediction, not 1,000). Each member keeps its own
 * bounded queue, so a slow member never slows the others or the shared execution. The
 * execution stops when its last member leaves. Refusals (an error before the first
 * event) are never shared: each subscriber gets its own.
 */
export function useSharedSubscriptions(options: SharedSubscriptionsOptions): Plugin & { stats(): SharedSubscriptionStats } {
  const fields = new Set(options.fields);
  const printed = new WeakMap<DocumentNode, string>();
  const channels = new Map<string, Channel>();
  // One measure per result, not one per member.
  const sizes = new WeakMap<ExecutionResult, number>();
  const sizeOf = (result: ExecutionResult) => {
    let size = sizes.get(result);
    if (size === undefined) sizes.set(result, (size = 256 + JSON.stringify(result.data ?? null).length));
    return size;
  };
  const maxEvents = options.maxEvents ?? 1024;
  const maxBytes = options.maxBytes ?? 16 * 1024 * 1024;

  function keyOf(document: DocumentNode, operationName: string | null | undefined, variables: unknown, context: unknown): string | undefined {
    const operation = getOperationAST(document, operationName);
    if (!operation || operation.operation !== OperationTypeNode.SUBSCRIPTION) return undefined;
    const roots = operation.selectionSet.selections;
    if (!roots.every((s) => s.kind === Kind.FIELD && fields.has(s.name.value))) return undefined;
    let text = printed.get(document);
    if (text === undefined) printed.set(document, (text = print(document)));
    return JSON.stringify([text, operationName ?? null, variables ?? {}, options.scopeOf?.(context) ?? '']);
  }

  async function pump(key: string, channel: Channel, stream: Stream): Promise<void> {
    try {
      for await (const result of stream) for (const member of channel.members) member.push(result);
    } catch (error) {
      // The source failed mid-stream: every member hears it, as each would have alone.
      const failure: ExecutionResult = { errors: [error instanceof GraphQLError ? error : new GraphQLError(error instanceof Error ? error.message : String(error), { originalError: error instanceof Error ? error : undefined })] };
      for (const member of channel.members) member.push(failure);
    } finally {
      if (channels.get(key) === channel) channels.delete(key);
      for (const member of channel.members) member.end();
    }
  }

  return {
    stats: () => ({
      executions: channels.size,
      subscribers: [...channels.values()].flatMap((c) => [...c.members].map((m) => m.stats)),
    }),
    onSubscribe({ args, subscribeFn, setSubscribeFn }) {
      const key = keyOf(args.document as DocumentNode, args.operationName as string | null | undefined, args.variableValues, args.contextValue);
      if (key === undefined) return;
      setSubscribeFn(async (subscribeArgs) => {
        let channel = channels.get(key);
        const creator = !channel;
        if (!channel) {
          const source = Promise.resolve(subscribeFn(subscribeArgs)) as Promise<Stream | ExecutionResult>;
          const created: Channel = { source, members: new Set() };
          channel = created;
          channels.set(key, created);
          void source.then(
            (result) => {
              if (isStream(result)) void pump(key, created, result);
              else channels.delete(key);
            },
            () => channels.delete(key),
          );
        }
        const joined = channel;
        const result = await joined.source;
        // A refusal is each subscriber's own: the creator's is returned, a joiner asks for its own.
        if (!isStream(result)) return creator ? result : (subscribeFn(subscribeArgs) as Promise<ExecutionResult | Stream>);
        const member = createSubscriberQueue<ExecutionResult>({
          maxEvents,
          maxBytes,
          sizeOf,
          onReturn: () => {
            joined.members.delete(member);
            if (joined.members.size === 0) {
              if (channels.get(key) === joined) channels.delete(key);
              void result.return?.();
            }
          },
        });
        joined.members.add(member);
        return member.iterator;
      });
    },
  };
}
