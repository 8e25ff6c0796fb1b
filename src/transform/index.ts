/**
 * Batch transform: a whole folder, dataset or list of URLs through a model, sharded over the
 * worker engine, resumable, results to .jsonl or .csv (SageMaker's CreateTransformJob). Also the
 * results format that `kennel predict` writes.
 */
export { runTransform, DEFAULT_SHARD_SIZE, type TransformRequest, type TransformOptions, type TransformResult } from './transform.js';
export { TRANSFORM_TASKS, itemName, type TransformItem } from './tasks.js';
export { filePrediction, resultWriter, checkResultsPath, type FilePrediction, type ResultWriter } from './results.js';
