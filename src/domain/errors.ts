/**
 * The one error vocabulary of the domain. Domain code throws DomainError with a code from
 * this closed set; src/trpc.ts maps it to a TRPCError (and so to an HTTP status) in one place.
 */
export type DomainErrorCode =
  | 'BAD_REQUEST'
  | 'UNAUTHORIZED'
  | 'FORBIDDEN'
  | 'NOT_FOUND'
  | 'CONFLICT'
  | 'TOO_MANY_REQUESTS'
  | 'SERVICE_UNAVAILABLE';

export interface ValidationIssue {
  path: (string | number)[];
  message: string;
}

export class DomainError extends Error {
  override readonly name = 'DomainError';
  constructor(
    readonly code: DomainErrorCode,
    message: string,
    readonly issues?: ValidationIssue[],
    /** For SERVICE_UNAVAILABLE / TOO_MANY_REQUESTS: when to try again (Retry-After). */
    readonly retryAfterSeconds?: number,
  ) {
    super(message);
  }
}

export const notFound = (what: string) => new DomainError('NOT_FOUND', `${what} not found`);
export const conflict = (message: string) => new DomainError('CONFLICT', message);
/** An input-validation failure found after schema parsing (it carries `issues` like one). */
export const invalid = (path: (string | number)[], message: string) =>
  new DomainError('BAD_REQUEST', message, [{ path, message }]);
