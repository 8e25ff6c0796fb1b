/**
 * The data area: importing image datasets (folder, zip or URL) as immutable, content-addressed
 * versions, and reading them back. Other areas (training, evaluation) use only this module.
 */
export type { DatasetItem, DatasetVersion, ImportReport, Split } from './types.js';
export { SPLITS } from './types.js';
export { importDataset, getDatasetVersion, imagePath } from './import.js';
export { listDatasets, listVersions, parseDatasetRef, deleteDatasetVersions } from './catalog.js';
export { isLeak } from './report.js';
export { validateSplit } from './split.js';

