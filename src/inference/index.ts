/**
 * Inference: load a model and run images through it. Decoding and preprocessing (the input
 * spec), devices, ORT sessions (on this thread or their own), the classifier, the feature
 * extractor, and classify(), the one call from a registered model to top-k predictions.
 */
export { decodeRgb, normalizeInto, inputShape, inputSize, NORMALIZATIONS, MAX_INPUT_PIXELS, type PreprocessSpec, type CropView, type ImageInput } from './preprocess.js';
export { assertDevice } from './device-probe.js';
export { DEVICES, ENDPOINT_DEVICES, executionProviders, type Device, type EndpointDevice } from './devices.js';
export { sessionOptions, Session, type ModelSession, type SessionIO, type SessionSettings } from './session.js';
export { ThreadedSession, openSession } from './threaded.js';
export { Classifier, type ClassifierOptions, type ModelSpec, type Prediction } from './classifier.js';
export { FeatureExtractor, tuneSharp, type ExtractInput } from './extractor.js';
export { classify, classifyBatches, type Classification, type ClassifyOptions, type ModelSource } from './pipeline.js';
