/**
 * A KennelError is a problem the user can act on: its message is one sentence saying what went
 * wrong, and `hint` says what to do. The CLI prints both without a stack trace; the HTTP layer
 * maps `status` to the response code.
 */
export class KennelError extends Error {
  constructor(
    message: string,
    readonly hint?: string,
    readonly status = 400,
    readonly code = 'invalid_request',
  ) {
    super(message);
    this.name = 'KennelError';
  }
}

export const notFound = (what: string, hint?: string): KennelError => new KennelError(`${what} was not found.`, hint, 404, 'not_found');

/** Thrown when work is cancelled (Ctrl-C); everything finished so far is kept for a rerun. */
export class CancelledError extends Error {
  constructor() {
    super('cancelled');
    this.name = 'CancelledError';
  }
}

export function errorMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
