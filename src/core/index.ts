export { KennelError, CancelledError, notFound, errorMessage } from './errors.js';
export { writeFileAtomic, tempPathFor, fsyncDir } from './fsutil.js';
export { Rng, seedFrom } from './rng.js';
export { median } from './stats.js';
export type { ProgressEvent, ProgressSink } from './progress.js';
export { silent } from './progress.js';
export { Child, ChildStartError, TypedEmitter, runnableEntry, type ChildExit, type ChildListener, type ChildOptions } from './child.js';
export { printable, utf8Name, escapeBytes } from './text.js';
export { fromSystemError } from './system-errors.js';
