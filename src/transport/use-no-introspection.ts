import { GraphQLError, NoSchemaIntrospectionCustomRule, type ValidationContext, type ValidationRule } from 'graphql';
import type { Plugin } from 'graphql-yoga';

/**
 * graphql-js's own rule against `__schema` and `__type` (`__typename` stays allowed), with
 * code INTROSPECTION_DISABLED on its errors so clients can tell this refusal from a typo.
 * Yoga gives them the status of any validation error (400 for
 * `application/graphql-response+json`, 200 for `application/json`).
 */
const introspectionDisabled: ValidationRule = (context) => {
  const coded = Object.create(context, {
    reportError: {
      value: (error: GraphQLError) =>
        context.reportError(new GraphQLError(error.message, { nodes: error.nodes, extensions: { code: 'INTROSPECTION_DISABLED' } })),
    },
  }) as ValidationContext;
  return NoSchemaIntrospectionCustomRule(coded);
};

/**
 * Refuses introspection before execution, over every transport (HTTP, SSE, WebSocket).
 * Operations still run; GraphiQL shows the refusal instead of its docs and completions.
 */
export function useNoIntrospection(): Plugin {
  return {
    onValidate({ addValidationRule }) {
      addValidationRule(introspectionDisabled);
    },
  };
}
