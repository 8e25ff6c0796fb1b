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

  /** The catalogue entry of this error's code (`e.kind === Errors.NotFound`); undefined for a code the catalogue lacks. */
  get kind(): ErrorCode | undefined {
    return codes.get(this.code);
  }

  /** The same error (message, status, code) with another hint. */
  withHint(hint: string | undefined): KennelError {
    return new KennelError(this.message, hint, this.status, this.code);
  }
}

/**
 * One error code of the catalogue (`error-codes.ts`): defined once with its HTTP status (and a
 * default hint where one is generic), constructed by name, compared by identity.
 */
export interface ErrorCode<C extends string = string> {
  /** A new error of this code (a hint left out takes the default); `status` only where it comes from elsewhere (an upstream answer). */
  (message: string, hint?: string, status?: number): KennelError;
  readonly code: C;
  readonly status: number;
  readonly hint?: string;
  /**
   * Whether `e` is a KennelError of this code (its catalogue entry is this one). The narrowed
   * type names the code, so that `!X.is(e)` leaves a KennelError (or one of another code) as it is.
   */
  is(e: unknown): e is KennelError & { readonly code: C };
}

const codes = new Map<string, ErrorCode>();

/** Defines an error code; each code string is defined once (a second definition throws). */
export function errorCode<C extends string>(code: C, status: number, defaultHint?: string): ErrorCode<C> {
  if (codes.has(code)) throw new Error(`error code ${code} is defined twice`);
  const make = (message: string, hint: string | undefined = defaultHint, s = status): KennelError => new KennelError(message, hint, s, code);
  const kind: ErrorCode<C> = Object.assign(make, { code, status, hint: defaultHint, is: (e: unknown): e is KennelError & { readonly code: C } => e instanceof KennelError && e.kind === kind });
  codes.set(code, kind);
  return kind;
}

/** Every defined code, in definition order. */
export const errorCodes = (): ErrorCode[] => [...codes.values()];

/**
 * An error rebuilt from its parts as they crossed a boundary (a daemon's JSON answer, a
 * replica's or a worker thread's message): message, hint, status and code as they were sent.
 */
export function rebuiltError(message: string, hint: string | undefined, status: number, code?: string): KennelError {
  return new KennelError(message, hint, status, code);
}

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
