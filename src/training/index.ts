export { train, concatRows, TrainOptionsSchema, type TrainOptions, type TrainResult } from './train.js';
export { datasetFeatures, type DatasetFeatures } from './dispatch.js';
export { fitHead, type HeadConfig, type EpochStats } from './head.js';
export { recordChunk, missingChunks, CHUNK_ROWS } from './features.js';
export { TRAINING_TASKS } from './tasks.js';
export { standardizer, applyStandardizer } from './export.js';
