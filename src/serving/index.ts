export { ServingRuntime, type ServedVariant, type EndpointDescription, type ShadowDescription, type VariantLoad, type ServingHooks } from './runtime.js';
export { PRIMARY_VARIANT, SHADOW_VARIANT, CreateEndpointSchema, UpdateEndpointSchema, listEndpoints, getEndpoint, recordEvent, type Shadow, type Capture, type EndpointSpec } from './endpoints.js';
export { CaptureSink, CAPTURE_DIMS, captureProjection, projectRow, readCaptures, capturedModels, captureCounts, enforceCaptureBounds, type CapturedRequest } from './capture.js';
export type { ShadowReport, ClassDisagreement, LatencySummary } from './shadow.js';
export { type PoolTimings } from './supervisor.js';
export type { InvocationResult } from './router.js';
export { IMAGE_TYPES, DEFAULT_MAX_IMAGE_BYTES, checkImage, decodeBase64Image } from './request.js';
export { AsyncInference, ASYNC_DEFAULTS, openAsyncRequests, outputLocation, parseRequestLocation, artifactOfLocation, type AsyncInferenceOptions, type AsyncAccepted, type AsyncRequestStatus, type AsyncRequestStore, type AsyncRequestList } from './async.js';
