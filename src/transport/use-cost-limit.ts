import { complexityFromQuery } from '@pothos/plugin-complexity';
import { GraphQLError, Kind, type DefinitionNode, type DocumentNode, type GraphQLSchema, type OperationDefinitionNode } from 'graphql';
import type { Plugin } from 'graphql-yoga';
import { GatewayError, QueryTooComplexError } from '../errors.ts';

interface OperationArgs {
  schema: GraphQLSchema;
  document: DocumentNode;
  operationName?: string | null;
  variableValues?: Record<string, unknown> | null;
  contextValue: object;
}

/**
 * The cost of the operation `args` will run: the fields' declared costs (schema/cost.ts)
 * with this request's variables. Undefined when the variables do not coerce or an argument
 * fails its check (the cost reads arguments through Pothos, checks included): execution then
 * refuses them with its own BAD_USER_INPUT.
 */
export function operationCost(args: OperationArgs): number | undefined {
  const operations = args.document.definitions.filter((d): d is OperationDefinitionNode => d.kind === Kind.OPERATION_DEFINITION);
  const operation = args.operationName ? operations.find((o) => o.name?.value === args.operationName) : operations.length === 1 ? operations[0] : undefined;
  if (!operation) return undefined;
  // complexityFromQuery measures a document's first operation: give it the one that runs.
  const definitions: DefinitionNode[] = [operation, ...args.document.definitions.filter((d) => d.kind === Kind.FRAGMENT_DEFINITION)];
  try {
    return complexityFromQuery({ kind: Kind.DOCUMENT, definitions }, { schema: args.schema, ctx: args.contextValue, variables: args.variableValues ?? {} }).complexity;
  } catch (error) {
    if (error instanceof GraphQLError || error instanceof GatewayError) return undefined;
    throw error;
  }
}

/** The refusal, shaped like every expected error; Yoga puts `http.status` on the status line. */
const refusal = (cost: number, limit: number) => {
  const error = new QueryTooComplexError(cost, limit);
  // No originalError: useGatewayErrors would rebuild it without the 400 it keeps for 429s and 5xx.
  return { errors: [new GraphQLError(error.message, { extensions: { code: error.code, ...error.details, http: { status: error.httpStatus } } })] };
};

/**
 * Refuses an operation whose cost is over `limit` before any resolver runs (no inference, no
 * database read or write), with QUERY_TOO_COMPLEX (`extensions.cost`, `extensions.limit`), on
 * every transport. Register it after useTensorVariables: big tensors in variables are then
 * counted through their token, never copied or coerced.
 *
 * The execute or subscribe function is replaced rather than the execution stopped, so the
 * plugins after this one (the operation log) still see the operation and its refusal.
 */
export function useCostLimit(limit: number): Plugin {
  const check = (args: OperationArgs) => {
    const cost = operationCost(args);
    return cost !== undefined && cost > limit ? refusal(cost, limit) : undefined;
  };
  return {
    onExecute({ args, setExecuteFn }) {
      const refused = check(args);
      if (refused) setExecuteFn(() => refused);
    },
    onSubscribe({ args, setSubscribeFn }) {
      const refused = check(args);
      if (refused) setSubscribeFn(() => refused);
    },
  };
}
