export { openWorkspace, openArtifactStore, defaultHome, now, type Workspace } from './workspace.js';
export { LocalArtifactStore, sha256, sha256File, type ArtifactStore } from './artifacts.js';
export type { Db } from './db.js';
export { createJob, finishJob, findJobs, getJob, listJobs, newJobId, recentJobs, removeJob, type Job, type JobFilter, type JobStatus } from './jobs.js';
export { collectGarbage, DEFAULT_GRACE_MS, type CollectOptions, type CollectReport, type GarbageItem, type GarbageKind } from './gc.js';
