/**
 * Inference: load a model and run images through it. Decoding and preprocessing, ORT sessions
 * (devices, threads, a session in its own thread), the classifier and the feature extractor.
 */
export { decodeRgb, normalizeInto, inputShape, inputSize, NORMALIZATIONS, MAX_INPUT_PIXELS, type PreprocessSpec, type CropView } from './preprocess.js';
export { executionProviders, sessionOptions, type Device, type SessionSettings } from './session.js';
export { ThreadedSession } from './threaded.js';
export { Classifier, type Prediction } from './classifier.js';
export { FeatureExtractor, tuneSharp, type ExtractInput } from './extractor.js';
