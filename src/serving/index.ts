export { DynamicBatcher } from './batcher.js';
export { BatchedClassifier, type BatchedClassifierOptions } from './batched.js';
export { imageInputs, predictFiles, type FilePrediction, type ImageInputs } from './predict.js';
export { ServingRuntime, type EndpointDescription, type VariantDescription, type VariantLoad, type ServingHooks, type RuntimeOptions } from './runtime.js';
export { PRIMARY_VARIANT, CreateEndpointSchema, UpdateEndpointSchema, listEndpoints, type CreateEndpointInput, type UpdateEndpointInput, type EndpointSpec } from './endpoints.js';
export { DEFAULT_TIMINGS, type PoolTimings, type ReplicaInfo } from './supervisor.js';
export type { InvocationResult, Target } from './router.js';
export { IMAGE_TYPES, DEFAULT_MAX_IMAGE_BYTES, checkImage, decodeBase64Image } from './request.js';
