/**
 * Entry of a local worker process (a process Child of LocalPool). It runs one
 * task at a time and talks to the pool over the IPC channel; when the pool goes away it exits.
 */
import { CancelledError, KennelError, errorMessage } from '../core/index.js';
import { TaskHost } from './host.js';
import type { Task } from './task.js';

export interface ChildConfig {
  home: string;
  threads: number;
  taskModules: string[];
}

export type ToChild = { type: 'run'; task: Task } | { type: 'stop' };

export interface TaskFailure {
  message: string;
  hint?: string;
  cancelled: boolean;
}

export type FromChild =
  | { type: 'ready' }
  | { type: 'fatal'; message: string }
  | { type: 'progress'; id: string; units: number }
  | { type: 'done'; id: string; output: unknown; seconds: number }
  | { type: 'failed'; id: string; error: TaskFailure };

const send = (m: FromChild): Promise<void> => new Promise((resolve) => (process.connected ? process.send!(m, undefined, undefined, () => resolve()) : resolve()));

async function main(): Promise<void> {
  const config = JSON.parse(process.argv[2] ?? '{}') as ChildConfig;
  process.on('disconnect', () => process.exit(0));
  let host: TaskHost;
  try {
    host = await TaskHost.open(config);
  } catch (e) {
    await send({ type: 'fatal', message: errorMessage(e) });
    process.exit(1);
  }
  let current: AbortController | undefined;
  process.on('message', (m: ToChild) => {
    if (m.type === 'stop') {
      current?.abort();
      void host.close().finally(() => process.exit(0));
      return;
    }
    current = new AbortController();
    const started = performance.now();
    const { task } = m;
    host
      .run(task, { signal: current.signal, progress: (units) => void send({ type: 'progress', id: task.id, units }) })
      .then(
        (output) => send({ type: 'done', id: task.id, output, seconds: (performance.now() - started) / 1000 }),
        (e: unknown) => send({ type: 'failed', id: task.id, error: { message: errorMessage(e), hint: e instanceof KennelError ? e.hint : undefined, cancelled: e instanceof CancelledError } }),
      )
      .finally(() => (current = undefined));
  });
  await send({ type: 'ready' });
}

await main();
