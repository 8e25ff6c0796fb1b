export { KennelError, CancelledError, notFound, errorMessage } from './errors.js';
export { writeFileAtomic, tempPathFor, fsyncDir } from './fsutil.js';
export { Rng, seedFrom } from './rng.js';
export { median } from './stats.js';
export type { ProgressEvent, ProgressSink } from './progress.js';
export { silent } from './progress.js';
export { startWorkerThread } from './worker-thread.js';
export { isAlive } from './process.js';
