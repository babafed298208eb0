import {
  getNamedType,
  getNullableType,
  isInputObjectType,
  isListType,
  type GraphQLInputType,
  type GraphQLSchema,
  type OperationDefinitionNode,
  typeFromAST,
} from 'graphql';
import type { Plugin } from 'graphql-yoga';

/** Lists of Float shorter than this take the ordinary path. */
const MIN_ELEMENTS = 1024;

/**
 * Big `[Float!]` lists in variables (tensor data: megabytes of numbers) bypass the
 * executor's list coercion, which copies a list twice and allocates several objects per
 * element (a 1.3 MB tensor cost ~40 MB of garbage). Before execution each such list whose
 * elements are all numbers (exactly what Float's coercion accepts from JSON) is swapped
 * for a one-element list holding a random token; resolvers that take Float lists call
 * `restore` to get the original back. A list with anything else in it is left alone, so
 * errors are the executor's own. Every field that takes a Float list must call `restore`.
 */
export class TensorVariables {
  private readonly lists = new Map<number, number[]>();

  /** The original list for a token list; any other list as it is. */
  restore<T extends readonly number[] | null | undefined>(list: T): T {
    if (list?.length === 1) {
      const original = this.lists.get(list[0]!);
      if (original) return original as unknown as T;
    }
    return list;
  }

  /** Replaces big Float lists inside `value` (of `type`) in place; returns the value to use. */
  swap(value: unknown, type: GraphQLInputType): unknown {
    if (value === null || value === undefined || typeof value !== 'object') return value;
    const nullable = getNullableType(type);
    if (isListType(nullable)) {
      if (!Array.isArray(value)) return value;
      const item = getNullableType(nullable.ofType);
      if (getNamedType(item).name === 'Float' && !isListType(item)) return this.swapFloats(value);
      for (let i = 0; i < value.length; i++) value[i] = this.swap(value[i], item);
      return value;
    }
    if (isInputObjectType(nullable) && !Array.isArray(value)) {
      const record = value as Record<string, unknown>;
      for (const field of Object.values(nullable.getFields())) {
        if (record[field.name] !== undefined) record[field.name] = this.swap(record[field.name], field.type);
      }
    }
    return value;
  }

  private swapFloats(list: unknown[]): unknown[] {
    if (list.length < MIN_ELEMENTS) return list;
    // Exactly what Float's coercion accepts (`1e999` in JSON parses to Infinity, which it refuses).
    for (let i = 0; i < list.length; i++) if (!Number.isFinite(list[i])) return list;
    let token = Math.random();
    while (this.lists.has(token)) token = Math.random();
    this.lists.set(token, list as number[]);
    return [token];
  }
}

/** Swaps the operation's big Float-list variables before the executor coerces them (see TensorVariables). */
export function swapTensorVariables(
  schema: GraphQLSchema,
  operation: OperationDefinitionNode | undefined,
  variables: Record<string, unknown> | null | undefined,
  into: TensorVariables,
): void {
  if (!operation || !variables) return;
  for (const definition of operation.variableDefinitions ?? []) {
    const name = definition.variable.name.value;
    const type = typeFromAST(schema, definition.type) as GraphQLInputType | undefined;
    if (type && variables[name] !== undefined) variables[name] = into.swap(variables[name], type);
  }
}

/** The envelop hook: runs before execution on every transport (HTTP, SSE, WebSocket). */
export function useTensorVariables(): Plugin<{ tensorVariables: TensorVariables }> {
  const swapIn = ({ args }: { args: { schema: GraphQLSchema; document: { definitions: readonly unknown[] }; operationName?: string | null; variableValues?: unknown; contextValue: { tensorVariables: TensorVariables } } }) => {
    const operations = args.document.definitions.filter((d): d is OperationDefinitionNode => (d as { kind: string }).kind === 'OperationDefinition');
    const operation = args.operationName ? operations.find((o) => o.name?.value === args.operationName) : operations.length === 1 ? operations[0] : undefined;
    swapTensorVariables(args.schema, operation, args.variableValues as Record<string, unknown> | undefined, args.contextValue.tensorVariables);
  };
  return { onExecute: swapIn, onSubscribe: swapIn };
}
