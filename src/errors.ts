import { GraphQLError } from 'graphql';

/**
 * Expected errors: the client may see them, with `extensions.code`. Anything else
 * thrown in a resolver is masked (see observability/error-masking.ts).
 */
export type ErrorCode = 'BAD_USER_INPUT' | 'MODEL_NOT_FOUND' | 'MODEL_NOT_READY' | 'TOO_MANY_REQUESTS' | 'SERVICE_UNAVAILABLE';

/** One problem in a request, located by its path in the operation's arguments. */
export interface InputIssue {
  path: ReadonlyArray<string | number>;
  message: string;
}

export class GatewayError extends GraphQLError {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, extensions: Record<string, unknown> = {}) {
    super(message, { extensions: { code, ...extensions } });
    this.code = code;
  }
}

/** The request is wrong; `issues` lists every problem found, not just the first. */
export class BadUserInputError extends GatewayError {
  readonly issues: readonly InputIssue[];
  constructor(issues: readonly InputIssue[]) {
    const first = issues[0];
    const summary = first ? `${formatPath(first.path)}: ${first.message}` : 'invalid input';
    const more = issues.length > 1 ? ` (and ${issues.length - 1} more)` : '';
    super('BAD_USER_INPUT', `Invalid input: ${summary}${more}`, {
      issues: issues.map((i) => ({ path: [...i.path], message: i.message })),
    });
    this.issues = issues;
  }
}

export class ModelNotFoundError extends GatewayError {
  constructor(model: string, version?: number) {
    super(
      'MODEL_NOT_FOUND',
      version === undefined
        ? `Model \`${model}\` is not in the model repository`
        : `Model \`${model}\` has no version ${version}`,
      { model, ...(version === undefined ? {} : { version }) },
    );
  }
}

export class ModelNotReadyError extends GatewayError {
  constructor(model: string, version: number, status: string, reason?: string) {
    super(
      'MODEL_NOT_READY',
      `Model \`${model}\` version ${version} is not ready (${status}${reason ? `: ${reason}` : ''})`,
      { model, version, status },
    );
  }
}

/** A capacity limit is reached; retrying later can succeed. */
export class TooManyRequestsError extends GatewayError {
  constructor(what: string, limit: number) {
    super('TOO_MANY_REQUESTS', `Too many ${what} at once (limit ${limit}); retry later`, { limit });
  }
}

/** The server is shutting down and takes no new work. */
export class ServiceUnavailableError extends GatewayError {
  constructor() {
    super('SERVICE_UNAVAILABLE', 'The server is shutting down; retry on another instance');
  }
}

export function formatPath(path: ReadonlyArray<string | number>): string {
  return path.reduce<string>(
    (out, part) => (typeof part === 'number' ? `${out}[${part}]` : out ? `${out}.${part}` : part),
    '',
  );
}
