import { randomUUID } from 'node:crypto';
import { checkImage, DEFAULT_MAX_IMAGE_BYTES, type ServingRuntime } from '../serving/index.js';
import type { EndpointClient } from './types.js';

/**
 * Functions call endpoints in-process, through the daemon's router (weighted variants, least
 * outstanding replica, retry), without a second HTTP hop.
 */
export function endpointClientFor(runtime: ServingRuntime, maxImageBytes = DEFAULT_MAX_IMAGE_BYTES): EndpointClient {
  return {
    async invoke(endpoint, body, _contentType, opts = {}) {
      const target = runtime.router.route(endpoint);
      const result = await runtime.router.invoke(target, checkImage(body, maxImageBytes), { topK: opts.topK ?? 5, requestId: opts.requestId ?? randomUUID() });
      return { predictions: result.predictions, model: result.model, variant: result.variant };
    },
  };
}
