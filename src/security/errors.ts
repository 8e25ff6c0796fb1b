import { KennelError } from '../core/index.js';

/** 429: the caller should retry after `retryAfterSeconds` (sent as the Retry-After header). */
export class ThrottledError extends KennelError {
  constructor(
    message: string,
    hint: string,
    readonly retryAfterSeconds: number,
  ) {
    super(message, hint, 429, 'throttled');
  }
}

export const unauthorized = (message: string, hint = 'Send an API key as "Authorization: Bearer <key>" (or "x-api-key: <key>"); create one with kennel keys create.') =>
  new KennelError(message, hint, 401, 'unauthorized');

export const forbidden = (principal: string, action: string, resource: string) =>
  new KennelError(`${principal} is not allowed to ${action} on ${resource}.`, `Grant it with kennel policies attach ${principal} --allow ${action}:${resource}`, 403, 'forbidden');

/** AWS SigV4 failures answer as AWS does: 403 with the AWS error type (InvalidSignatureException...). */
export const invalidSignature = (message: string) => new KennelError(message, 'Sign requests with the access key pair from kennel keys create NAME --aws, and a correct clock.', 403, 'invalid_signature');

export const unrecognizedClient = (message: string) => new KennelError(message, 'Use an access key id that kennel keys list shows as active.', 403, 'unrecognized_client');

/** A SigV4 Authorization header or presigned query that lacks or garbles a part (AWS: IncompleteSignatureException, 400). */
export const incompleteSignature = (message: string) => new KennelError(message, 'Sign requests with an AWS SDK (SigV4), or send a Kennel key as Authorization: Bearer.', 400, 'incomplete_signature');
