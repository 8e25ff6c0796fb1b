/**
 * Housekeeping: deleting datasets, models, backbones and jobs with their guards, and cancelling
 * jobs. Every delete frees artifacts through the store's garbage collector (collectGarbage),
 * the same one `kennel gc` runs.
 */
export { deleteModel, deleteDataset, deleteBackbone, type Deleted } from './delete.js';
export { cancelJob, deleteJob, requireJob } from './jobs.js';
