import { Worker, type WorkerOptions } from 'node:worker_threads';

/**
 * Starts a worker thread on `entry`, the URL of a module next to the caller given with its
 * compiled name (`new URL('./x.js', import.meta.url)`). Kennel normally runs compiled JS; when
 * it runs from its TypeScript sources (the tests, through tsx), tsx's hooks do not reach worker
 * threads on Node 20, so the worker registers them itself before loading the .ts entry.
 */
export function startWorkerThread(entry: URL, options: WorkerOptions = {}): Worker {
  if (!entry.pathname.endsWith('.js') || !import.meta.url.endsWith('.ts')) return new Worker(entry, options);
  const source = new URL(entry.href.replace(/\.js$/, '.ts'));
  const tsx = import.meta.resolve('tsx/esm/api');
  return new Worker(`import(${JSON.stringify(tsx)}).then((tsx) => { tsx.register(); return import(${JSON.stringify(source.href)}); })`, { ...options, eval: true });
}
