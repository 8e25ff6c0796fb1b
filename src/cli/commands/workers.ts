import { Option, type Command } from 'commander';
import { availableParallelism } from 'node:os';
import { Errors } from '../../core/index.js';
import { artifactsConfig, defaultHome } from '../../store/index.js';
import { executionProviders } from '../../inference/index.js';
import { TRAINING_TASKS } from '../../training/index.js';
import { TUNING_TASKS } from '../../tuning/index.js';
import { TRANSFORM_TASKS } from '../../transform/index.js';
import { listWorkers, startRedisWorker, type WorkerInfo } from '../../workers/index.js';
import { emit, jsonCommand, runAction, table, type CommandContext } from '../output.js';
import { number, queueOf } from '../options.js';

/** Every task type a `kennel worker` can run: feature extraction for training, head trials for tuning. */
const TASK_MODULES = (): string[] => [TRAINING_TASKS(), TUNING_TASKS(), TRANSFORM_TASKS()];
/** How long a stopping worker lets its current task finish before handing it back to the queue (seconds). */
const STOP_GRACE_S = 10;
/** after a stop, lingering handles (a native library, a socket) may keep the process this long at most */
const EXIT_BACKSTOP_MS = 2_000;


export function registerWorkers(program: Command): void {
  // not a jsonCommand: a long-running process that logs on stderr and handles SIGTERM itself
  program
    .command('worker')
    .description('Run tasks (feature extraction for kennel train --queue, trials for kennel tune --queue) from a Redis queue until stopped. With --artifacts s3://BUCKET/PREFIX it needs no shared folder: artifacts come from the bucket through a local cache. SIGTERM or Ctrl-C: finish the current task (or hand it back after --grace) and exit 0; when Redis is unreachable by then, exit 1 at once, saying so.')
    .option('--queue <url>', 'Redis URL, e.g. redis://host:6379 (default $KENNEL_QUEUE)')
    .option('--home <dir>', 'without --artifacts: the shared workspace, the same KENNEL_HOME as the coordinator (default $KENNEL_HOME or ./.kennel)')
    .option('--cache <dir>', 'with --artifacts: the local artifact cache (default $KENNEL_ARTIFACTS_CACHE, or ~/.cache/kennel/artifacts; bounded by $KENNEL_ARTIFACTS_CACHE_GB, default 10)')
    .option('--threads <n>', 'ONNX Runtime threads per task (default: all cores)', number('--threads', { int: true, min: 1, max: 1024 }))
    .option('--name <id>', 'worker id shown by kennel workers list (default HOST-PID)')
    .option('--lock-seconds <s>', 'seconds a task stays claimed after this worker stops responding, before another worker takes it over', number('--lock-seconds', { min: 1, max: 3600 }), 30)
    .addOption(new Option('--grace <s>', 'seconds a stopping worker lets its current task finish before handing it back').env('KENNEL_WORKER_GRACE').argParser(number('--grace', { min: 0, max: 3600 })).default(STOP_GRACE_S))
    .option('--json', 'print a JSON summary on exit instead of a log line per task')
    .action((opts: { queue?: string; home?: string; cache?: string; threads?: number; name?: string; lockSeconds: number; grace: number; json?: boolean }) =>
      runAction(async (signal) => {
        const queue = queueOf(opts.queue);
        if (!queue) throw Errors.InvalidRequest('kennel worker needs a queue.', 'Give --queue redis://HOST:PORT (or set KENNEL_QUEUE) and --artifacts s3://BUCKET/PREFIX (or --home SHARED_KENNEL_HOME).');
        if (opts.cache) process.env.KENNEL_ARTIFACTS_CACHE = opts.cache;
        // with an S3 store the worker has no workspace: only its cache
        const s3 = artifactsConfig().url;
        const home = opts.home ?? (s3 ? undefined : defaultHome());
        const log = (line: string) => {
          if (!opts.json) process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${line}\n`);
        };
        const counts = { done: 0, failed: 0, returned: 0 };
        const started = performance.now();
        const worker = await startRedisWorker({
          url: queue,
          home,
          threads: opts.threads ?? availableParallelism(),
          device: executionProviders('auto')[0]!,
          taskModules: TASK_MODULES(),
          name: opts.name,
          lockSeconds: opts.lockSeconds,
          onEvent: (e) => {
            if (e.type === 'started') return log(`start ${e.task.label}`);
            counts[e.type]++;
            log(e.type === 'done' ? `done  ${e.task.label} in ${e.seconds!.toFixed(1)}s` : e.type === 'failed' ? `failed ${e.task.label}: ${e.error}` : `handed back ${e.task.label}`);
          },
        });
        const w = worker.info;
        // one handler for the whole life of the worker, set before saying it waits: a SIGTERM sent as
        // soon as that line is read, or a second one, must never meet Node's default (death by signal)
        let terms = 0;
        const stopAsked = new Promise<void>((resolve) => {
          signal.addEventListener('abort', () => resolve(), { once: true });
          process.on('SIGTERM', () => (terms++ === 0 ? resolve() : void worker.close(0)));
        });
        log(`worker ${w.id} on ${w.host} (${w.cores} cores, ${w.threads} thread${w.threads === 1 ? '' : 's'}, ${w.device}) waiting for tasks; artifacts ${s3 ?? `in ${home}`}`);
        await stopAsked;
        log(`stopping: finishing the current task for up to ${opts.grace}s (SIGTERM again hands it back now)`);
        const stop = await worker.close(opts.grace * 1000);
        // the stop is bounded even if something still holds the event loop open
        setTimeout(() => process.exit(), EXIT_BACKSTOP_MS).unref();
        if (!stop.clean) throw Errors.QueueUnavailable(`Worker ${w.id} stopped without a clean hand-over: ${stop.reason}.`, 'Check that Redis is running; other workers take the task over once Redis is back.');
        log('stopped');
        emit(opts, { worker: w.id, host: w.host, tasks: counts, seconds: (performance.now() - started) / 1000 }, () => '');
      }),
    );

  jsonCommand(
    program
      .command('workers')
      .description('Inspect workers.')
      .command('list')
      .description('Live workers: local worker processes of running trainings in this workspace, and `kennel worker` processes on the queue.')
      .option('--queue <url>', 'also list the workers of this Redis queue (default $KENNEL_QUEUE)'),
    {
      action: ({ opts }: CommandContext<{ queue?: string; json?: boolean }>) => listWorkers({ home: defaultHome(), queue: queueOf(opts.queue) }),
      json: (workers) => ({ workers }),
      human: (workers) => (workers.length ? table(['WORKER', 'BACKEND', 'HOST', 'CORES', 'THREADS', 'DEVICE', 'HEARTBEAT', 'TASK'], workers.map(row)) : 'no live workers'),
    },
  );
}

function row(w: WorkerInfo): Array<string | number> {
  const age = Math.max(0, Math.round((Date.now() - Date.parse(w.heartbeatAt)) / 1000));
  return [w.id, w.backend, w.host, w.cores, w.threads, w.device, `${age}s ago`, w.task ? w.task.label : 'idle'];
}
