/**
 * Inference: load a model and run images through it. Decoding and preprocessing (the input
 * spec), devices, ORT sessions (on this thread or their own), the classifier, the feature
 * extractor, and classify(), the one call from a registered model to top-k predictions.
 */
export { decodeRgb, tuneSharp, normalizeInto, inputShape, inputSize, NORMALIZATIONS, type PreprocessSpec, type CropView } from './preprocess.js';
export { assertDevice, cudaFingerprint } from './device-probe.js';
export { DEVICES, ENDPOINT_DEVICES, cudaProviderPath, deviceEnvironment, executionProviders, providersFor, type Device, type DeviceEnvironment, type EndpointDevice } from './devices.js';
export { sessionOptions } from './session.js';
export { PRECISIONS, type Precision } from './precision.js';
export { Classifier, NEAR_TIE_GAP, type ModelInput, type ModelSpec, type Prediction } from './classifier.js';
export { FeatureExtractor } from './extractor.js';
export { DecodePool, decodeWorkersFor } from './decode-pool.js';
export { withUint8Input, UINT8_INPUT } from './uint8-input.js';
export { DynamicBatcher, batchShapes, type BatchingConfig } from './batcher.js';
export { BatchedClassifier, type BatchRun } from './batched.js';
export { classify, classifyBatched, type Classification, type ModelSource } from './pipeline.js';
export { Explainer, camPlan, renderOverlay, OCCLUSION_GRID, type Explanation, type CamPlan, type CamResult } from './explain.js';
export { FeatureTap } from './tap.js';
