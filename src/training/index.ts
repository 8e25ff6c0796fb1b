export { train, concatRows, TrainOptionsSchema, type TrainOptions, type TrainResult } from './train.js';
export { datasetFeatures, type DatasetFeatures, type FeatureOptions, type WorkerThroughput } from './dispatch.js';
export { fitHead, type HeadConfig, type EpochStats, type StepSample } from './head.js';
export { evaluate, fitTemperature, ece, softmaxRows, type SplitMetrics } from './metrics.js';
export { extractChunk, recordChunk, missingChunks, featureKey, trainingReference, CHUNK_ROWS, EXTRACT_BATCH, type FeatureRequest, type TrainingReference } from './features.js';
export { tasks as trainingTasks, TRAINING_TASKS, type ExtractChunkInput, type ExtractChunkOutput } from './tasks.js';
export { PROBABILITIES_OUTPUT, standardizer, applyStandardizer, buildServingModel, type Standardizer } from './export.js';
export { fitProbe, fitLogistic, probeFeatures, l2Rows, linearWeights, type ProbeChoice, type ProbePrior } from './probe.js';
