/** Entry of an import's check worker process (checkImages): checks the files of each job it is sent. */
import { serveJobs } from '../core/index.js';
import { runCheckJob, type CheckJob } from './check-pool.js';

serveJobs<CheckJob>(runCheckJob);
