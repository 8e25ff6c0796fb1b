export { ServingRuntime, type ServedVariant, type EndpointDescription, type VariantLoad, type ServingHooks } from './runtime.js';
export { PRIMARY_VARIANT, CreateEndpointSchema, UpdateEndpointSchema, listEndpoints } from './endpoints.js';
export { type PoolTimings } from './supervisor.js';
export type { InvocationResult } from './router.js';
export { IMAGE_TYPES, DEFAULT_MAX_IMAGE_BYTES, checkImage, decodeBase64Image } from './request.js';
export { AsyncInference, ASYNC_DEFAULTS, asyncRequest, asyncRequests, replayAsyncRequests, purgeAsyncRequests, outputLocation, parseRequestLocation, artifactOfLocation, type AsyncInferenceOptions, type AsyncAccepted, type AsyncRequestStatus } from './async.js';
