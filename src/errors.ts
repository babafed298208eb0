/**
 * Expected errors: what went wrong, in terms any caller can act on, with no transport in
 * them. The GraphQL layer (observability/use-gateway-errors.ts) turns them into
 * `extensions.code` plus `details`, and puts `httpStatus` on the status line where GraphQL
 * over HTTP allows; a CLI or batch worker reads the same fields. Anything else thrown is
 * unexpected and masked (observability/error-masking.ts).
 */
export type ErrorCode =
  | 'BAD_USER_INPUT'
  | 'MODEL_NOT_FOUND'
  | 'NOT_FOUND'
  | 'MODEL_NOT_READY'
  | 'TOO_MANY_REQUESTS'
  | 'SERVICE_UNAVAILABLE'
  | 'PAYLOAD_TOO_LARGE'
  | 'UNSUPPORTED_MEDIA_TYPE'
  | 'CSRF_HEADER_REQUIRED'
  | 'UNAUTHENTICATED'
  | 'FORBIDDEN'
  | 'RATE_LIMITED'
  | 'QUERY_TOO_COMPLEX';

/** One problem in a request, located by its path in the operation's arguments. */
export interface InputIssue {
  path: ReadonlyArray<string | number>;
  message: string;
}

export class GatewayError extends Error {
  override readonly name: string = 'GatewayError';
  /** Machine-readable kind; clients switch on it (`extensions.code` in GraphQL). */
  readonly code: ErrorCode;
  /** The HTTP status this error means (4xx: the request, 5xx or 429: the server, retry later). */
  readonly httpStatus: number;
  /** What the client needs beyond the message (`issues`, `model`, `limit`…); JSON values only. */
  readonly details: Readonly<Record<string, unknown>>;
  /** Seconds after which the same request can succeed, when the error is about capacity. */
  readonly retryAfterSeconds: number | undefined;

  constructor(code: ErrorCode, httpStatus: number, message: string, details: Record<string, unknown> = {}, retryAfterSeconds?: number) {
    super(message);
    this.code = code;
    this.httpStatus = httpStatus;
    this.details = details;
    this.retryAfterSeconds = retryAfterSeconds;
  }
}

/** The request is wrong; `issues` lists every problem found, not just the first. */
export class BadUserInputError extends GatewayError {
  override readonly name = 'BadUserInputError';
  readonly issues: readonly InputIssue[];
  constructor(issues: readonly InputIssue[]) {
    const first = issues[0];
    const summary = first ? `${formatPath(first.path)}: ${first.message}` : 'invalid input';
    const more = issues.length > 1 ? ` (and ${issues.length - 1} more)` : '';
    super('BAD_USER_INPUT', 400, `Invalid input: ${summary}${more}`, {
      issues: issues.map((i) => ({ path: [...i.path], message: i.message })),
    });
    this.issues = issues;
  }
}

export class ModelNotFoundError extends GatewayError {
  override readonly name = 'ModelNotFoundError';
  constructor(model: string, version?: number) {
    super(
      'MODEL_NOT_FOUND',
      404,
      version === undefined
        ? `Model \`${model}\` is not in the model repository`
        : `Model \`${model}\` has no version ${version}`,
      { model, ...(version === undefined ? {} : { version }) },
    );
  }
}

/** An object addressed by id (a batch job) does not exist. */
export class NotFoundError extends GatewayError {
  override readonly name = 'NotFoundError';
  constructor(what: string, id: string) {
    super('NOT_FOUND', 404, `No ${what} with id \`${id}\``, { id });
  }
}

/** The version is LOADING (retry soon) or FAILED (retrying here will not help until it is reloaded). */
export class ModelNotReadyError extends GatewayError {
  override readonly name = 'ModelNotReadyError';
  constructor(model: string, version: number, status: string, reason?: string) {
    super(
      'MODEL_NOT_READY',
      503,
      `Model \`${model}\` version ${version} is not ready (${status}${reason ? `: ${reason}` : ''})`,
      { model, version, status },
    );
  }
}

/** A capacity limit is reached; retrying later can succeed. */
export class TooManyRequestsError extends GatewayError {
  override readonly name = 'TooManyRequestsError';
  constructor(what: string, limit: number) {
    // A slot frees when any running one ends; one second is a floor for the client's back-off, not a promise.
    super('TOO_MANY_REQUESTS', 429, `Too many ${what} at once (limit ${limit}); retry later`, { limit }, 1);
  }
}

/** The server is shutting down and takes no new work. */
export class ServiceUnavailableError extends GatewayError {
  override readonly name = 'ServiceUnavailableError';
  constructor() {
    super('SERVICE_UNAVAILABLE', 503, 'The server is shutting down; retry on another instance');
  }
}

/** A request body (or message) is over the size limit; it was not read. */
export class PayloadTooLargeError extends GatewayError {
  override readonly name = 'PayloadTooLargeError';
  constructor(limit: number, message = `Request body over ${limit} bytes`) {
    super('PAYLOAD_TOO_LARGE', 413, message);
  }
}

/**
 * A POST whose body is neither JSON nor a multipart upload. Browsers send forms and
 * `text/plain` cross-site without asking first, so such bodies are never read.
 */
export class UnsupportedMediaTypeError extends GatewayError {
  override readonly name = 'UnsupportedMediaTypeError';
  constructor(contentType: string | undefined, accepted: readonly string[]) {
    super(
      'UNSUPPORTED_MEDIA_TYPE',
      415,
      `POST bodies must be ${accepted.join(' or ')} (or multipart/form-data for uploads), got ${contentType ? `\`${contentType}\`` : 'no Content-Type'}`,
      { accepted: [...accepted, 'multipart/form-data'] },
    );
  }
}

/**
 * A request a browser would send cross-site without a preflight (a multipart upload, a
 * subscription over GET) lacks a header that only a script can set.
 */
export class CsrfHeaderRequiredError extends GatewayError {
  override readonly name = 'CsrfHeaderRequiredError';
  constructor(what: string, headers: readonly string[]) {
    super('CSRF_HEADER_REQUIRED', 403, `${what} need one of the headers ${headers.map((h) => `\`${h}\``).join(', ')} (any value)`, {
      headers: [...headers],
    });
  }
}

/** AUTH_MODE=required and the request carries no API key, or one that is unknown, malformed or revoked. */
export class UnauthenticatedError extends GatewayError {
  override readonly name = 'UnauthenticatedError';
  constructor(reason: string) {
    super('UNAUTHENTICATED', 401, `Unauthenticated: ${reason}`);
  }
}

/** The API key is valid but lacks a scope the field needs (`scopes`: any one of them would do). */
export class ForbiddenError extends GatewayError {
  override readonly name = 'ForbiddenError';
  constructor(field: string, scopes: readonly string[]) {
    super('FORBIDDEN', 403, `Forbidden: \`${field}\` needs an API key with the ${scopes.map((s) => `\`${s}\``).join(' or ')} scope`, { scopes: [...scopes] });
  }
}

/** An operation asks for more work than MAX_QUERY_COST allows (schema/cost.ts says what counts). */
export class QueryTooComplexError extends GatewayError {
  override readonly name = 'QueryTooComplexError';
  constructor(cost: number, limit: number) {
    super('QUERY_TOO_COMPLEX', 400, `Operation cost ${cost} is over the limit of ${limit}`, { cost, limit });
  }
}

export function formatPath(path: ReadonlyArray<string | number>): string {
  return path.reduce<string>(
    (out, part) => (typeof part === 'number' ? `${out}[${part}]` : out ? `${out}.${part}` : part),
    '',
  );
}

/** The caller spent its budget of this class of work (RATE_LIMITS); `retryAfterMs` says when enough of it is back. */
export class RateLimitedError extends GatewayError {
  override readonly name = 'RateLimitedError';
  constructor(operationClass: string, retryAfterMs: number, limit: { points: number; durationS: number }) {
    super(
      'RATE_LIMITED',
      429,
      `Rate limit of ${limit.points} ${operationClass} per ${limit.durationS} s reached; retry in ${Math.max(1, Math.ceil(retryAfterMs / 1000))} s`,
      { operationClass, retryAfterMs, limit: limit.points, windowSeconds: limit.durationS },
      Math.max(1, Math.ceil(retryAfterMs / 1000)),
    );
  }
}
