import { GraphQLError, type ExecutionResult } from 'graphql';
import type { Plugin } from 'graphql-yoga';

const VARIABLE_ERROR = /^Variable "\$(\w+)" got invalid value .*? at "([^"]+)"; (.*)$|^Variable "\$(\w+)" (.*)$/s;

const LIMIT_ERROR = /^Syntax Error: (Query depth|Aliases|Token|Directives|Query Cost) limit/;
const isLimitError = (error: { message: string; extensions?: Record<string, unknown> }) => !error.extensions?.['code'] && LIMIT_ERROR.test(error.message);

/** `i.features[0]` → ['i', 'features', 0] */
function parseVariablePath(path: string): Array<string | number> {
  return [...path.matchAll(/([^.[\]]+)|\[(\d+)\]/g)].map((m) => (m[2] !== undefined ? Number(m[2]) : m[1]!));
}

/**
 * graphql-js rejects bad variable values (a non-finite Float, a string for an Int,
 * a missing required field) before any resolver runs, without an error code. This
 * gives those errors the same shape as every other input error: code BAD_USER_INPUT
 * and `issues: [{ path, message }]`, the path starting at the variable's name. It also
 * gives operation-limit rejections a code.
 */
export function useErrorCodes(): Plugin {
  const mapResult = (result: ExecutionResult): ExecutionResult | undefined => {
    if (!result.errors?.length || result.data !== undefined) return undefined;
    let changed = false;
    const errors = result.errors.map((error) => {
      const match = VARIABLE_ERROR.exec(error.message);
      if (!match || error.extensions?.['code']) return error;
      changed = true;
      const path = match[1] ? parseVariablePath(match[2]!) : [match[4]!];
      const message = match[1] ? match[3]! : match[5]!;
      return new GraphQLError(error.message, {
        nodes: error.nodes,
        source: error.source,
        positions: error.positions,
        extensions: { ...error.extensions, code: 'BAD_USER_INPUT', issues: [{ path, message }] },
      });
    });
    return changed ? { ...result, errors } : undefined;
  };
  return {
    // GraphQL Armor reports its limits as bare errors ("Syntax Error: Query depth limit of 20
    // exceeded, found 27."); give them the code graphql-js validation errors get.
    onResultProcess({ result, setResult }) {
      if (Array.isArray(result) || Symbol.asyncIterator in result || !result.errors?.length) return;
      if (!result.errors.some(isLimitError)) return;
      setResult({
        ...result,
        errors: result.errors.map((error) =>
          isLimitError(error)
            ? new GraphQLError(error.message.replace(/^Syntax Error: /, ''), { extensions: { ...error.extensions, code: 'GRAPHQL_VALIDATION_FAILED' } })
            : error,
        ),
      });
    },
    onExecute() {
      return {
        onExecuteDone({ result, setResult }) {
          if (Symbol.asyncIterator in result) return;
          const mapped = mapResult(result);
          if (mapped) setResult(mapped);
        },
      };
    },
  };
}
