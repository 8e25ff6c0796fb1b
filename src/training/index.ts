export { train, datasetFeatures, TrainOptionsSchema, type TrainOptions, type TrainResult } from './train.js';
export { FeatureExtractor, executionProviders, tuneSharp, type Device } from './extract.js';
export { fitHead, type HeadConfig, type EpochStats, type StepSample } from './head.js';
export { evaluate, fitTemperature, ece, type SplitMetrics } from './metrics.js';
export { loadOrComputeFeatures, computeChunk, missingChunks, featureKey, CHUNK_ROWS, EXTRACT_BATCH, type FeatureRequest } from './features.js';
export { PROBABILITIES_OUTPUT } from './export.js';
