/**
 * Housekeeping and jobs: deleting datasets, models, backbones and jobs with their guards,
 * cancelling jobs, and the daemon's jobs service (JobRunner: jobs started through the admin
 * API). Every delete frees artifacts through the store's garbage collector (collectGarbage),
 * the same one `kennel gc` runs. Drift checks of endpoints' captured requests against their
 * model's training features (checkDrift, the daemon's DriftMonitor) live here too: the one area
 * allowed to import both serving and training.
 */
export { deleteModel, deleteDataset, deleteBackbone, type Deleted } from './delete.js';
export { cancelJob, deleteJob, requireJob, type CancelRoute } from './jobs.js';
export { JobRunner, type JobRequest, type JobLog } from './runner.js';
export { checkDrift, driftHistory, latestDriftPerModel, driftReference, type DriftReference, DriftMonitor, MIN_DRIFT_CAPTURES, type DriftResult, type DriftOptions, type ClassShare } from './drift.js';
