import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { Job, Queue, QueueEvents, WaitingError, Worker, type ConnectionOptions } from 'bullmq';
import { Redis } from 'ioredis';
import { Errors, CancelledError, KennelError, errorMessage } from '../core/index.js';
import { Channel, DEFAULT_ATTEMPTS, PoisonedTaskError, thisWorker, type Engine, type RunOptions, type TaskDone, type WorkerInfo } from './engine.js';
import { TaskHost } from './host.js';
import { HEARTBEAT_MS } from './presence.js';
import { parseQueueUrl, safeUrl } from './queue-url.js';
import type { Task } from './task.js';

/** BullMQ key prefix and queue name: all Kennel keys in Redis start with `kennel:`. */
const PREFIX = 'kennel';
const QUEUE = 'tasks';
const WORKER_KEY = `${PREFIX}:workers:`;
/** how often the coordinator checks on its in-flight jobs and on the workers */
const WATCH_MS = 5_000;
/** how long a stopping worker waits for Redis (to let go of its task and its presence key) before it exits anyway */
const CLOSE_TIMEOUT_MS = 5_000;
export const DEFAULT_LOCK_SECONDS = 30;

interface JobData {
  task: Task;
}

interface JobResult {
  output: unknown;
  worker: string;
  seconds: number;
  attempt: number;
}

interface JobProgress {
  worker: string;
  pid: number;
  units: number;
  started?: boolean;
}

/** Reconnection backoff: 0.25 s doubling to 5 s, for as long as it takes. */
const backoff = (times: number): number => Math.min(250 * 2 ** Math.min(times, 5), 5_000);

function bullConnection(u: URL): ConnectionOptions {
  return { url: u.href, retryStrategy: backoff, maxRetriesPerRequest: null } as ConnectionOptions;
}

/**
 * Connects to Redis, failing at once with a clear error when it cannot be reached; once
 * connected, the client reconnects with backoff instead of failing.
 */
async function connect(u: URL): Promise<Redis> {
  let connected = false;
  let cause: Error | undefined;
  const client = new Redis(u.href, { lazyConnect: true, connectTimeout: 3_000, maxRetriesPerRequest: null, retryStrategy: (n) => (connected ? backoff(n) : null) });
  // errors after this are reconnections, reported through notices or the failing command
  client.on('error', (e: Error) => (cause ??= e));
  try {
    await client.connect();
    await client.ping();
  } catch (e) {
    client.disconnect();
    const why = errorMessage(cause ?? e).replace(/\.$/, '');
    throw Errors.QueueUnavailable(`Cannot reach Redis at ${safeUrl(u)} (${why}).`, 'Start Redis there (Debian: apt-get install -y redis-server), or fix the URL given with --queue or KENNEL_QUEUE.');
  }
  connected = true;
  return client;
}

/** A connected client and BullMQ's connection options for a checked queue URL (`label`: the URL without its password). */
export interface RedisConnection {
  client: Redis;
  connection: ConnectionOptions;
  label: string;
}

/** Connects to the Redis of a queue URL, with the workers' checks, errors and reconnection rules. */
export async function openRedis(url: string): Promise<RedisConnection> {
  const u = parseQueueUrl(url);
  return { client: await connect(u), connection: bullConnection(u), label: safeUrl(u) };
}

/** Workers with a live heartbeat in Redis. */
export async function redisWorkers(client: Redis): Promise<WorkerInfo[]> {
  const keys: string[] = [];
  let cursor = '0';
  do {
    const [next, found] = await client.scan(cursor, 'MATCH', `${WORKER_KEY}*`, 'COUNT', 500);
    cursor = next;
    keys.push(...found);
  } while (cursor !== '0');
  if (!keys.length) return [];
  const values = await client.mget(...keys);
  return values.flatMap((v) => (v ? [JSON.parse(v) as WorkerInfo] : []));
}

/** `kennel workers list` for a queue: connects, reads the heartbeats, disconnects. */
export async function listRedisWorkers(url: string): Promise<WorkerInfo[]> {
  const client = await connect(parseQueueUrl(url));
  try {
    return await redisWorkers(client);
  } finally {
    client.disconnect();
  }
}

const STALL_REASONS = ['job stalled more than allowable limit', 'job started more than allowable limit'];

/**
 * The coordinator side of the Redis backend: tasks become BullMQ jobs on the `kennel:tasks`
 * queue, results come back through QueueEvents. At most `concurrency` jobs are queued or
 * running at once, so `--instances K` bounds how many workers a run uses.
 */
export class RedisEngine implements Engine {
  readonly backend = 'redis' as const;
  readonly concurrency: number;
  private readonly url: URL;
  private client?: Redis;
  private queue?: Queue<JobData, JobResult>;
  private events?: QueueEvents;

  constructor(private readonly opts: { url: string; concurrency: number; attempts?: number }) {
    this.url = parseQueueUrl(opts.url);
    this.concurrency = Math.max(1, opts.concurrency);
  }

  async start(): Promise<void> {
    if (this.client) return;
    this.client = await connect(this.url);
    const connection = bullConnection(this.url);
    this.queue = new Queue<JobData, JobResult>(QUEUE, { connection, prefix: PREFIX });
    // events from now on: read the stream's last id first, so none between subscribing and adding is missed
    const last = await this.client.xrevrange(this.queue.keys.events!, '+', '-', 'COUNT', 1);
    this.events = new QueueEvents(QUEUE, { connection, prefix: PREFIX, lastEventId: last[0]?.[0] ?? '0-0' });
    await Promise.all([this.queue.waitUntilReady(), this.events.waitUntilReady()]);
  }

  run(tasks: Task[], opts: RunOptions = {}): AsyncIterable<TaskDone> {
    const queue = this.queue;
    const events = this.events;
    const client = this.client;
    if (!queue || !events || !client) throw new Error('RedisEngine.run before start');
    const out = new Channel<TaskDone>();
    const run = randomBytes(4).toString('hex');
    const jobIdOf = (t: Task) => `${run}.${t.id.replaceAll(':', '.')}`;
    const byJob = new Map(tasks.map((t) => [jobIdOf(t), t]));
    const inFlight = new Set<string>();
    /** in flight and known to be in Redis: only these can have been lost */
    const submitted = new Set<string>();
    const retries = new Map<string, number>();
    let next = 0;
    let remaining = tasks.length;
    let finished = false;
    let connectionLost = false;

    const finish = (error?: unknown) => {
      if (finished) return;
      finished = true;
      if (error === undefined) out.end();
      else out.fail(error);
    };
    const jobOf = (task: Task) => ({ name: task.type, data: { task }, opts: { jobId: jobIdOf(task), attempts: this.opts.attempts ?? DEFAULT_ATTEMPTS, removeOnComplete: { age: 3600 }, removeOnFail: { age: 7 * 86400 } } });
    const submit = async () => {
      const batch: Task[] = [];
      while (!finished && inFlight.size + batch.length < this.concurrency && next < tasks.length) batch.push(tasks[next++]!);
      for (const t of batch) inFlight.add(jobIdOf(t));
      if (batch.length) await queue.addBulk(batch.map(jobOf));
      for (const t of batch) submitted.add(jobIdOf(t));
    };
    /** a job that vanished (Redis restarted without its data) is submitted again */
    const resubmit = async (jobId: string) => {
      if (finished || !inFlight.has(jobId)) return;
      opts.onEvent?.({ type: 'retrying', task: byJob.get(jobId)!, attempt: (retries.get(jobId) ?? 1) + 1, reason: 'its job was lost by Redis' });
      await queue.addBulk([jobOf(byJob.get(jobId)!)]);
    };
    const submitOrFail = () => void submit().catch(finish);
    const completed = (jobId: string, r: JobResult) => {
      if (finished || !inFlight.delete(jobId)) return;
      remaining--;
      out.push({ task: byJob.get(jobId)!, output: r.output, worker: r.worker, seconds: r.seconds, attempts: r.attempt });
      if (remaining === 0) finish();
      else submitOrFail();
    };
    const failed = async (jobId: string, reason: string) => {
      if (finished || !inFlight.has(jobId)) return;
      const job = await Job.fromId<JobData, JobResult>(queue, jobId);
      const stalled = STALL_REASONS.includes(reason);
      // a job failed for stalling is failed when next picked up, without running: count the runs
      const attempts = Math.max(1, (stalled ? job?.stalledCounter : job?.attemptsMade) ?? 1);
      const why = stalled ? 'its worker died or stopped responding each time (the task crashes workers, or they run out of memory)' : reason;
      finish(new PoisonedTaskError(byJob.get(jobId)!, attempts, why));
    };
    const retrying = (jobId: string, reason: string) => {
      const task = byJob.get(jobId);
      if (!task || finished) return;
      const attempt = (retries.get(jobId) ?? 1) + 1;
      retries.set(jobId, attempt);
      opts.onEvent?.({ type: 'retrying', task, attempt, reason });
    };

    const onCompleted = ({ jobId, returnvalue }: { jobId: string; returnvalue: unknown }) => completed(jobId, (typeof returnvalue === 'string' ? JSON.parse(returnvalue) : returnvalue) as JobResult);
    const onFailed = ({ jobId, failedReason }: { jobId: string; failedReason: string }) => void failed(jobId, failedReason).catch(finish);
    const onProgress = ({ jobId, data }: { jobId: string; data: unknown }) => {
      const task = byJob.get(jobId);
      const p = data as JobProgress;
      if (!task || finished || typeof p !== 'object') return;
      if (p.started) opts.onEvent?.({ type: 'started', task, worker: p.worker, pid: p.pid });
      else opts.onEvent?.({ type: 'progress', task, worker: p.worker, units: p.units });
    };
    const onStalled = ({ jobId }: { jobId: string }) => retrying(jobId, 'its worker stopped responding (crashed, killed or cut off)');
    const onWaiting = ({ jobId, prev }: { jobId: string; prev?: string }) => {
      if (prev === 'failed') retrying(jobId, 'it failed on its worker');
    };
    const onError = (e: Error) => {
      if (connectionLost) return;
      connectionLost = true;
      opts.onEvent?.({ type: 'notice', message: `lost the connection to Redis (${errorMessage(e)}); reconnecting` });
    };
    const onReady = () => {
      if (connectionLost) opts.onEvent?.({ type: 'notice', message: 'reconnected to Redis' });
      connectionLost = false;
    };
    // every listener this run adds, so the same list takes them off again
    type Emitter = { on(event: string, fn: (...args: any[]) => void): unknown; off(event: string, fn: (...args: any[]) => void): unknown };
    const listeners: Array<[Emitter, string, (...args: any[]) => void]> = [
      [events, 'completed', onCompleted],
      [events, 'failed', onFailed],
      [events, 'progress', onProgress],
      [events, 'stalled', onStalled],
      [events, 'waiting', onWaiting],
      [events, 'error', onError],
      [queue, 'error', onError],
      [client, 'error', onError],
      [client, 'ready', onReady],
    ];
    for (const [emitter, name, fn] of listeners) emitter.on(name, fn);

    // safety net for lost events (a reconnect, a trimmed stream): look at in-flight jobs directly
    let watching = false; // one check at a time: during an outage the interval's calls would pile up
    const watch = setInterval(() => {
      if (watching || finished) return;
      watching = true;
      void this.watch(client, queue, [...inFlight].filter((id) => submitted.has(id)), { completed, failed, resubmit }, opts)
        .catch(() => {})
        .finally(() => (watching = false));
    }, WATCH_MS);
    const onAbort = () => finish(new CancelledError());
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    if (opts.signal?.aborted) onAbort();
    else if (!tasks.length) finish();
    else submitOrFail();

    return (async function* () {
      try {
        yield* out;
      } finally {
        finish(new CancelledError());
        clearInterval(watch);
        opts.signal?.removeEventListener('abort', onAbort);
        for (const [emitter, name, fn] of listeners) emitter.off(name, fn);
        // jobs nobody took yet are withdrawn; running ones finish and expire on their own
        await Promise.all([...inFlight].map((id) => queue.remove(id).catch(() => 0)));
      }
    })();
  }

  private async watch(
    client: Redis,
    queue: Queue<JobData, JobResult>,
    inFlight: string[],
    on: { completed: (id: string, r: JobResult) => void; failed: (id: string, reason: string) => Promise<void>; resubmit: (id: string) => Promise<void> },
    opts: RunOptions,
  ): Promise<void> {
    for (const id of inFlight) {
      const job = await Job.fromId<JobData, JobResult>(queue, id);
      if (!job) {
        await on.resubmit(id);
        continue;
      }
      const state = await job.getState();
      if (state === 'completed') on.completed(id, job.returnvalue);
      else if (state === 'failed') await on.failed(id, job.failedReason);
    }
    if (inFlight.length && !(await redisWorkers(client)).length) {
      opts.onEvent?.({ type: 'notice', message: `no kennel worker is connected to ${safeUrl(this.url)}; start one with kennel worker --queue ${safeUrl(this.url)} and the same --artifacts (or a shared --home)` });
    }
  }

  async close(): Promise<void> {
    await this.events?.close();
    await this.queue?.close();
    this.client?.disconnect();
    this.events = undefined;
    this.queue = undefined;
    this.client = undefined;
  }
}

export interface RedisWorkerOptions {
  url: string;
  /** the shared workspace; not needed with an S3 artifact store (KENNEL_ARTIFACTS) */
  home?: string;
  threads: number;
  /** execution provider name shown in `workers list` */
  device: string;
  taskModules: string[];
  /** default: host-pid */
  name?: string;
  /** seconds a task stays claimed without a lock renewal before another worker takes it over */
  lockSeconds?: number;
  attempts?: number;
  onEvent?: (e: { type: 'started' | 'done' | 'failed' | 'returned'; task: Task; seconds?: number; error?: string }) => void;
}

/**
 * A `kennel worker`: a BullMQ Worker taking one task at a time from the queue, with a heartbeat
 * in Redis for `kennel workers list`. A worker that dies loses its lock; BullMQ's stalled-job
 * check then gives the task to another worker, and a task that keeps killing workers fails
 * after `attempts` starts instead of looping.
 */
export class RedisWorker {
  private current?: { task: Task; startedAt: string; controller: AbortController };
  private heartbeat?: NodeJS.Timeout;
  private closing?: Promise<WorkerStop>;

  private constructor(
    readonly info: WorkerInfo,
    private readonly url: URL,
    private readonly client: Redis,
    private readonly host: TaskHost,
    private readonly worker: Worker<JobData, JobResult>,
  ) {}

  static async start(o: RedisWorkerOptions): Promise<RedisWorker> {
    const url = parseQueueUrl(o.url);
    const host = await TaskHost.open({ home: o.home, threads: o.threads, taskModules: o.taskModules });
    const client = await connect(url);
    const id = o.name ?? `${hostname()}-${process.pid}`;
    const info = thisWorker('redis', { id, threads: o.threads, device: o.device });
    const lockMs = (o.lockSeconds ?? DEFAULT_LOCK_SECONDS) * 1000;
    const attempts = o.attempts ?? DEFAULT_ATTEMPTS;
    let self: RedisWorker | undefined;
    const worker = new Worker<JobData, JobResult>(QUEUE, (job, token) => self!.process(job, token, o), {
      connection: bullConnection(url),
      prefix: PREFIX,
      name: id,
      concurrency: 1,
      autorun: false,
      lockDuration: lockMs,
      stalledInterval: Math.max(500, lockMs / 2),
      // a task whose worker dies `attempts` times is failed instead of run again
      maxStalledCount: attempts - 1,
      maxStartedAttempts: attempts,
    });
    worker.on('error', () => {}); // the connection reconnects with backoff; tasks in flight are re-run elsewhere if it does not
    self = new RedisWorker(info, url, client, host, worker);
    await self.beat();
    self.heartbeat = setInterval(() => void self!.beat().catch(() => {}), HEARTBEAT_MS);
    void worker.run();
    await worker.waitUntilReady();
    return self;
  }

  private async process(job: Job<JobData, JobResult>, token: string | undefined, o: RedisWorkerOptions): Promise<JobResult> {
    const task = job.data.task;
    const controller = new AbortController();
    this.current = { task, startedAt: new Date().toISOString(), controller };
    void this.beat().catch(() => {});
    const report = (p: Omit<JobProgress, 'worker' | 'pid'>) => void job.updateProgress({ worker: this.info.id, pid: process.pid, ...p }).catch(() => {});
    report({ units: 0, started: true });
    o.onEvent?.({ type: 'started', task });
    const started = performance.now();
    try {
      const output = await this.host.run(task, { signal: controller.signal, progress: (units) => report({ units }) });
      const seconds = (performance.now() - started) / 1000;
      o.onEvent?.({ type: 'done', task, seconds });
      return { output, worker: this.info.id, seconds, attempt: job.attemptsStarted };
    } catch (e) {
      if (controller.signal.aborted) {
        // stopping: hand the task back untouched, so another worker runs it now
        await job.moveToWait(token);
        o.onEvent?.({ type: 'returned', task });
        throw new WaitingError();
      }
      o.onEvent?.({ type: 'failed', task, error: errorMessage(e) });
      throw e instanceof KennelError && e.hint ? new Error(`${e.message} ${e.hint}`) : e;
    } finally {
      this.current = undefined;
    }
  }

  private async beat(): Promise<void> {
    const c = this.current;
    const info: WorkerInfo = { ...this.info, heartbeatAt: new Date().toISOString(), task: c && { id: c.task.id, label: c.task.label, startedAt: c.startedAt } };
    await this.client.set(WORKER_KEY + this.info.id, JSON.stringify(info), 'PX', 3 * HEARTBEAT_MS);
  }

  /**
   * Stops taking tasks. The current task may finish within `graceMs`; after that (or at once
   * with 0) it is handed back to the queue. When Redis cannot be reached, nothing can be handed
   * back or reported, so the task is abandoned at once (it returns to the queue when its lock
   * expires) and the result says why. Always resolves within about graceMs + 5 s.
   */
  close(graceMs: number): Promise<WorkerStop> {
    // every call sets its own deadline, so a second SIGTERM (grace 0) hands the task back at once
    const abort = setTimeout(() => this.current?.controller.abort(), graceMs);
    this.closing ??= (async (): Promise<WorkerStop> => {
      const reachable = this.client.status === 'ready' && (await within(this.client.ping().then(() => true, () => false), PING_TIMEOUT_MS)) === true;
      const task = this.current?.task;
      if (!reachable) this.current?.controller.abort();
      // BullMQ's close waits on Redis: with Redis gone it would wait for ever, so give up on it
      // a while after the grace period (the claimed task then returns to the queue when its lock expires)
      const closed = reachable && (await within(this.worker.close().then(() => true), graceMs + CLOSE_TIMEOUT_MS)) === true;
      clearInterval(this.heartbeat);
      if (closed) await within(this.client.del(WORKER_KEY + this.info.id).catch(() => 0), CLOSE_TIMEOUT_MS);
      // disconnect() also stops the reconnection loops, which would otherwise keep the process alive
      this.client.disconnect();
      await within(this.worker.disconnect().catch(() => {}), CLOSE_TIMEOUT_MS);
      await within(this.host.close(), CLOSE_TIMEOUT_MS);
      if (closed) return { clean: true };
      const lost = task ? `; task ${task.label} returns to the queue when its lock expires` : '';
      return { clean: false, reason: `${reachable ? 'Redis stopped answering' : 'Redis'} at ${safeUrl(this.url)} ${reachable ? 'while the worker was stopping' : 'is unreachable'}${lost}` };
    })();
    return this.closing.finally(() => clearTimeout(abort));
  }
}

/** How a worker stopped: clean (task finished or handed back, presence removed) or not, and why. */
export type WorkerStop = { clean: true } | { clean: false; reason: string };

/** how long a stopping worker gives Redis to answer a ping before treating it as unreachable */
const PING_TIMEOUT_MS = 1_000;

/** Waits for `p`, but for `ms` at most. */
async function within<T>(p: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}
