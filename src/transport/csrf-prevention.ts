import type { IncomingMessage } from 'node:http';
import { getOperationAST, OperationTypeNode, type DocumentNode } from 'graphql';
import { createGraphQLError, type Plugin, type YogaInitialContext } from 'graphql-yoga';
import { CsrfHeaderRequiredError, UnsupportedMediaTypeError, type GatewayError } from '../errors.ts';
import { isMultipart } from './multipart-upload.ts';

/*
 * A browser sends some requests to any site without asking it first (no CORS preflight): GET
 * (an `<img>`, an `EventSource`), and POSTs of forms (`application/x-www-form-urlencoded`,
 * `multipart/form-data`) and `text/plain`. A page elsewhere could so make a visitor's browser
 * run a `predict` or start a `generate` on a gateway it can reach. Everything else needs a
 * preflight, which this gateway never grants. So: a POST body must be JSON; a multipart upload,
 * and a subscription over GET (`generate` runs inference and stores its text; Yoga already
 * refuses mutations over GET), must carry a header no form or `<img>` can set, as Yoga's
 * `useCSRFPrevention` and Apollo Server require. Queries over GET only read and stay open.
 */

/** The media types a POST body may have, besides multipart uploads (those Yoga parses as JSON). */
export const JSON_MEDIA_TYPES = ['application/json', 'application/graphql+json'] as const;

/** Yoga's CSRF prevention header and Apollo's: one of them, with any value, marks a request as sent by a script. */
export const CSRF_HEADERS = ['x-graphql-yoga-csrf', 'apollo-require-preflight'] as const;

const JSON_TYPE = new RegExp(`^(${JSON_MEDIA_TYPES.map((t) => t.replace(/[+.]/g, '\\$&')).join('|')})\\s*(;|$)`, 'i');

/** Why a POST must be refused before its body is read, if it must. Other methods pass. */
export function postRefusal(req: IncomingMessage): GatewayError | undefined {
  if (req.method !== 'POST') return undefined;
  if (isMultipart(req)) return CSRF_HEADERS.some((name) => req.headers[name] !== undefined) ? undefined : new CsrfHeaderRequiredError('Multipart requests', CSRF_HEADERS);
  const contentType = req.headers['content-type'];
  return contentType && JSON_TYPE.test(contentType) ? undefined : new UnsupportedMediaTypeError(contentType, JSON_MEDIA_TYPES);
}

/**
 * Refuses a subscription over GET without one of CSRF_HEADERS (403 CSRF_HEADER_REQUIRED), once
 * it is parsed and before it runs. GraphiQL subscribes over GET and sends the header.
 * Over WebSocket (no `request`) and POST nothing changes.
 */
export function useCsrfPreventionForGet(): Plugin<YogaInitialContext> {
  return {
    onParse() {
      return ({ result, context }) => {
        const { request, params } = context as Partial<YogaInitialContext>;
        if (request?.method !== 'GET' || !result || result instanceof Error) return;
        if (CSRF_HEADERS.some((name) => request.headers.has(name))) return;
        if (getOperationAST(result as DocumentNode, params?.operationName)?.operation !== OperationTypeNode.SUBSCRIPTION) return;
        const error = new CsrfHeaderRequiredError('Subscriptions over GET', CSRF_HEADERS);
        throw createGraphQLError(error.message, { extensions: { code: error.code, ...error.details, http: { status: error.httpStatus } } });
      };
    },
  };
}
