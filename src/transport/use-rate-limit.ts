import { createReadStream } from 'node:fs';
import { getOperationAST, Kind, type DocumentNode, type ExecutionResult, type FieldNode, type GraphQLSchema, type SelectionSetNode } from 'graphql';
import { getArgumentValues } from 'graphql/execution/values.js';
import type { Plugin } from 'graphql-yoga';
import type { Context } from '../schema/builder.ts';
import { gatewayErrorIn, gatewayGraphQLError, isHttp } from '../observability/use-gateway-errors.ts';
import type { OperationClass, RateLimiter } from './rate-limit.ts';

type Args = Record<string, unknown>;
/** The arguments the costs read, as graphql-js coerced them. */
interface CostInput {
  inputs?: Array<{ shape?: number[] }>;
  maxTokens?: number | null;
  rows?: unknown[] | null;
  file?: unknown;
}
const inputOf = (args: Args): CostInput => (args['input'] ?? {});
type Costs = Partial<Record<OperationClass, number>>;

/** Rows a predict input holds: one for `features`, else the first dimension of its biggest input (1 for a scalar). */
function predictRows(args: Args): number {
  const { inputs } = inputOf(args);
  if (!Array.isArray(inputs)) return 1;
  return Math.max(1, ...inputs.map((t) => (t.shape && t.shape.length > 0 ? Number(t.shape[0]) || 1 : 1)));
}

/** Lines of an uploaded file, counted as it streams from disk (a CSV header counts as one). */
async function linesOf(path: string): Promise<number> {
  let lines = 0;
  let last = 10;
  for await (const chunk of createReadStream(path) as AsyncIterable<Buffer>) {
    for (let i = chunk.indexOf(10); i !== -1; i = chunk.indexOf(10, i + 1)) lines++;
    last = chunk[chunk.length - 1] ?? last;
  }
  return last === 10 ? lines : lines + 1;
}

/** What each root field costs, by class. Every other root field is one `read`; introspection is free. */
const COSTS: Record<string, (args: Args, ctx: Context) => Costs | Promise<Costs>> = {
  predict: (args) => ({ predict: predictRows(args) }),
  generate: (args) => ({ generate: Number(inputOf(args).maxTokens ?? 64) }),
  async submitBatchJob(args, ctx) {
    const input = inputOf(args);
    if (Array.isArray(input.rows)) return { batch: input.rows.length };
    const file = input.file != null ? ctx.uploads.peek(input.file) : undefined;
    return { batch: file ? await linesOf(file.path) : 1 };
  },
};

/** Root fields of the operation, fragments expanded. */
function rootFields(document: DocumentNode, operationName: string | null | undefined): FieldNode[] {
  const operation = getOperationAST(document, operationName);
  if (!operation) return [];
  const fragments = new Map(document.definitions.flatMap((d) => (d.kind === Kind.FRAGMENT_DEFINITION ? [[d.name.value, d] as const] : [])));
  const fields: FieldNode[] = [];
  const visit = (set: SelectionSetNode, seen: Set<string>) => {
    for (const selection of set.selections) {
      if (selection.kind === Kind.FIELD) fields.push(selection);
      else if (selection.kind === Kind.INLINE_FRAGMENT) visit(selection.selectionSet, seen);
      else if (!seen.has(selection.name.value)) {
        seen.add(selection.name.value);
        const fragment = fragments.get(selection.name.value);
        if (fragment) visit(fragment.selectionSet, seen);
      }
    }
  };
  visit(operation.selectionSet, new Set());
  return fields;
}

async function costsOf(schema: GraphQLSchema, document: DocumentNode, operationName: string | null | undefined, variables: Args, ctx: Context): Promise<Costs> {
  const operation = getOperationAST(document, operationName);
  const root = operation && schema.getRootType(operation.operation);
  const costs: Costs = {};
  for (const node of rootFields(document, operationName)) {
    const name = node.name.value;
    if (name.startsWith('__')) continue;
    const field = root?.getFields()[name];
    if (!field) continue;
    const cost = COSTS[name] ? await COSTS[name](getArgumentValues(field, node, variables), ctx) : { read: 1 };
    for (const [operationClass, points] of Object.entries(cost) as Array<[OperationClass, number]>) costs[operationClass] = (costs[operationClass] ?? 0) + points;
  }
  return costs;
}

/**
 * Charges each operation's work to its caller before it runs (an API key's id, else the
 * client's address): rows of a predict, `maxTokens` of a generation, rows of a batch job,
 * one `read` per other root field. Over budget: RATE_LIMITED, with HTTP 429 and
 * Retry-After over HTTP, before any resolver, inference or database write.
 */
export function useRateLimit(limiter: RateLimiter): Plugin<Context> {
  /** The refusal, or undefined once the operation is charged. */
  const charge = async (args: {
    schema: GraphQLSchema;
    document: DocumentNode;
    operationName?: string | null;
    variableValues?: Args | null;
    contextValue: Context;
  }): Promise<ExecutionResult | undefined> => {
    const ctx = args.contextValue;
    const caller = ctx.principal?.keyId ? `key:${ctx.principal.keyId}` : `addr:${ctx.clientAddress}`;
    try {
      await limiter.charge(caller, await costsOf(args.schema, args.document, args.operationName, args.variableValues ?? {}, ctx));
      return undefined;
    } catch (error) {
      const gateway = gatewayErrorIn(error);
      if (!gateway) throw error;
      return { errors: [gatewayGraphQLError(gateway, undefined, isHttp(ctx))] };
    }
  };
  // The charge runs when the operation does, inside its execute/subscribe function: a plugin
  // after this one that refuses the operation outright (the cost limit) replaces that function,
  // so a refused operation is never charged; the plugins after it (the operation log) still see it.
  return {
    onExecute({ executeFn, setExecuteFn }) {
      setExecuteFn(async (args) => (await charge(args as never)) ?? (executeFn(args) as Promise<ExecutionResult>));
    },
    onSubscribe({ subscribeFn, setSubscribeFn }) {
      setSubscribeFn(async (args) => (await charge(args as never)) ?? (subscribeFn(args) as Promise<ExecutionResult>));
    },
  };
}
