import { KennelError } from '../core/errors.js';

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
