import { Errors, KennelError } from '../core/index.js';

/** 429: the caller should retry after `retryAfterSeconds` (sent as the Retry-After header). */
export class ThrottledError extends KennelError {
  constructor(
    message: string,
    hint: string,
    readonly retryAfterSeconds: number,
  ) {
    super(message, hint, Errors.Throttled.status, Errors.Throttled.code);
  }
}

export const unauthorized = (message: string, hint = 'Send an API key as "Authorization: Bearer <key>" (or "x-api-key: <key>"); create one with kennel keys create.') =>
  Errors.Unauthorized(message, hint);

export const forbidden = (principal: string, action: string, resource: string) =>
  Errors.Forbidden(`${principal} is not allowed to ${action} on ${resource}.`, `Grant it with kennel policies attach ${principal} --allow ${action}:${resource}`);

/** AWS SigV4 failures answer as AWS does: 403 with the AWS error type (InvalidSignatureException...). */
export const invalidSignature = (message: string) => Errors.InvalidSignature(message, 'Sign requests with the access key pair from kennel keys create NAME --aws, and a correct clock.');

export const unrecognizedClient = (message: string) => Errors.UnrecognizedClient(message, 'Use an access key id that kennel keys list shows as active.');

/** A SigV4 Authorization header or presigned query that lacks or garbles a part (AWS: IncompleteSignatureException, 400). */
export const incompleteSignature = (message: string) => Errors.IncompleteSignature(message, 'Sign requests with an AWS SDK (SigV4), or send a Kennel key as Authorization: Bearer.');
