/**
 * The data area: importing image datasets (folder, zip or URL) as immutable, content-addressed
 * versions, and reading them back. Other areas (training, evaluation) use only this module.
 */
export type { DatasetItem, DatasetVersion, ImportReport, Split } from './types.js';
export { SPLITS } from './types.js';
export { importDataset, getDatasetVersion, imagePath } from './import.js';
export { listDatasets, listVersions, parseDatasetRef, validateDatasetName, deleteDatasetVersions } from './catalog.js';
export { imbalanceWarning, isLeak } from './report.js';
export { DEFAULT_SPLIT, validateSplit, type SplitFractions } from './split.js';
export { checkImage, DEFAULT_LIMITS, type ImageCheck, type ImageLimits } from './images.js';
export { checkImages } from './check-pool.js';

