/** Entry of an import's check worker process (checkImages): checks the files of each job it is sent. */
import { serveJobs } from '../core/index.js';
import { encodeChecks, type CheckJob } from './check-pool.js';
import { checkImage } from './images.js';

serveJobs<CheckJob>(async ({ paths, limits }) => encodeChecks(await Promise.all(paths.map((p) => checkImage(p, limits)))));
