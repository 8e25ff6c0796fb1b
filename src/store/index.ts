export { openWorkspace, openArtifactStore, openArtifacts, artifactsConfig, defaultHome, now, type Workspace, type ArtifactsConfig } from './workspace.js';
export { LocalArtifactStore, sha256, sha256File, type ArtifactStore } from './artifacts.js';
export { S3ArtifactStore, parseS3Url } from './s3.js';
export { keepNewestRows, type Db, type EndpointHistoryTable } from './db.js';
export { createJob, finishJob, findJobs, getJob, listJobs, recentJobs, removeJob, type Job, type JobStatus } from './jobs.js';
export { collectGarbage, collectStoreGarbage, type CollectReport } from './gc.js';
export { DurableQueue, shortDuration, enqueueItem, listFailedItems, itemCounts, replayItems, purgeItems, type QueueTables, type QueueOptions, type QueuePolicy, type QueueRow, type FailedItem, type ItemCounts } from './queue.js';
