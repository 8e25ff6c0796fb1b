export { openWorkspace, openArtifactStore, defaultHome, now, type Workspace } from './workspace.js';
export { LocalArtifactStore, sha256, sha256File, type ArtifactStore } from './artifacts.js';
export type { Db } from './db.js';
export { createJob, finishJob, getJob, listJobs, newJobId, recentJobs, type Job, type JobStatus } from './jobs.js';
