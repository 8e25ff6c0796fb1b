import { createHash, randomUUID } from 'node:crypto';
import { realpathSync } from 'node:fs';
import { DelayedError, Queue, UnrecoverableError, WaitingError, Worker, type Job, type JobType } from 'bullmq';
import { Errors, errorMessage } from '../core/index.js';
import { shortDuration, type FailedItem, type Workspace } from '../store/index.js';
import { openRedis, type RedisConnection } from '../workers/index.js';
import {
  idsHint,
  inferenceIdInUse,
  isPermanent,
  isThrottle,
  outputLocation,
  queueFull,
  type AsyncPayload,
  type AsyncRequestList,
  type AsyncRequestRef,
  type AsyncRequestStatus,
  type AsyncRequestStore,
  type AsyncRunner,
  type AsyncStoreOptions,
  type NewAsyncRequest,
} from './async.js';

/**
 * Asynchronous requests in BullMQ on Redis (`kennel up --queue redis://...`): one queue per
 * endpoint of the workspace, `kennel:kennel-async-WS-ENDPOINT` (WS: a hash of the workspace's
 * path, so two workspaces can share a Redis). BullMQ's attempts and exponential backoff retry
 * errors, its failed set is the failure list, and its locks hand a request whose daemon died
 * (kill -9) to the next daemon once the lock expires (the stalled-job check).
 */

const PREFIX = 'kennel';
const QUEUED: JobType[] = ['waiting', 'delayed', 'prioritized'];
/** what endpoint names are made of (and a BullMQ queue name may not have a colon) */
const ENDPOINT_NAME = /^[a-z0-9][a-z0-9-]{0,62}$/;

interface JobData {
  id: string;
  endpoint: string;
  requestId: string;
  payload: AsyncPayload;
  notify?: string;
  maxAgeMs?: number;
  /** epoch ms; a replay starts it over */
  receivedAt: number;
  /** overloaded tries, which are not runs */
  throttles: number;
  /** the last throttled try's error (a failed run's is BullMQ's failedReason) */
  lastError?: string;
}

type RequestJob = Job<JobData, string>;
type Reason = Parameters<AsyncRunner['failed']>[1];

/** A failure no BullMQ retry may change, with the reason the runner is told. */
class FinalError extends UnrecoverableError {
  constructor(
    message: string,
    readonly reason: Reason,
  ) {
    super(message);
  }
}

/** BullMQ refuses custom job ids with a colon or made of digits only; inference ids may be either. */
const jobIdOf = (id: string): string => `r-${id.replaceAll(':', '%')}`;

/** The same workspace (however its path is written) gets the same queues. */
const workspaceTag = (home: string): string => createHash('sha256').update(realpathSync(home)).digest('hex').slice(0, 12);

const stateOf = (state: string): AsyncRequestStatus['status'] => (state === 'active' ? 'running' : state === 'completed' ? 'completed' : state === 'failed' ? 'failed' : 'queued');
const refOf = (d: JobData): AsyncRequestRef => ({ endpoint: d.endpoint, id: d.id, ...(d.notify ? { notify: d.notify } : {}) });

export class RedisRequests implements AsyncRequestStore {
  private readonly queues = new Map<string, Queue<JobData, string>>();
  private readonly workers = new Map<string, Worker<JobData, string>>();
  /** queued + running per endpoint, refreshed every pollMs while started (the autoscaler reads it synchronously) */
  private readonly depths = new Map<string, number>();
  private runner?: AsyncRunner;
  private refresher?: NodeJS.Timeout;
  /** resolves when runs still going at close must be handed back to the queue */
  private handBack?: Promise<void>;
  private releaseRuns?: () => void;

  private constructor(
    private readonly tag: string,
    private readonly redis: RedisConnection,
    private readonly opts: AsyncStoreOptions,
  ) {}

  /** Connects to Redis (503 with what to do when it cannot be reached). */
  static async open(ws: Workspace, url: string, opts: AsyncStoreOptions): Promise<RedisRequests> {
    return new RedisRequests(workspaceTag(ws.home), await openRedis(url), opts);
  }

  private name(endpoint: string): string {
    return `kennel-async-${this.tag}-${endpoint}`;
  }

  /** The queue of an endpoint that has requests (accepted now, or found at start), and its worker once started. */
  private queue(endpoint: string): Queue<JobData, string> {
    let q = this.queues.get(endpoint);
    if (!q) {
      q = this.newQueue(endpoint);
      this.queues.set(endpoint, q);
    }
    if (this.runner && !this.workers.has(endpoint)) this.workers.set(endpoint, this.worker(endpoint, this.runner));
    return q;
  }

  private newQueue(endpoint: string): Queue<JobData, string> {
    const q = new Queue<JobData, string>(this.name(endpoint), { connection: this.redis.client, prefix: PREFIX });
    q.on('error', () => {}); // the shared client reconnects with backoff; the failing call reports the error
    return q;
  }

  /**
   * Reads an endpoint's queue without keeping it: a status asked of any name (a typo, a deleted
   * endpoint) starts no worker and is not watched. A name no endpoint can have has nothing.
   */
  private async read<T>(endpoint: string, empty: T, fn: (q: Queue<JobData, string>) => Promise<T>): Promise<T> {
    const kept = this.queues.get(endpoint);
    if (kept) return fn(kept);
    if (!ENDPOINT_NAME.test(endpoint)) return empty;
    const q = this.newQueue(endpoint);
    try {
      return await fn(q);
    } finally {
      await q.close();
    }
  }

  async accept(r: NewAsyncRequest): Promise<string> {
    const q = this.queue(r.endpoint);
    const id = r.id ?? randomUUID();
    if (r.id !== undefined && (await q.getJob(jobIdOf(id)))) throw inferenceIdInUse(r.endpoint, id);
    // not atomic with the add: two daemons at the bound at once may store one more each
    const counts = await q.getJobCounts(...QUEUED, 'active', 'failed');
    const stored = Object.values(counts).reduce((a, n) => a + n, 0);
    if (stored >= this.opts.maxItemsPerOwner) throw queueFull(`The asynchronous queue of endpoint ${r.endpoint} is full (${stored} requests waiting, running or failed).`, r.endpoint);
    const data: JobData = { id, endpoint: r.endpoint, requestId: r.requestId, payload: r.payload, notify: r.notify, maxAgeMs: r.maxAgeMs, receivedAt: Date.now(), throttles: 0 };
    const job = await q.add('request', data, {
      jobId: jobIdOf(id),
      attempts: 1 + this.opts.maxRetries,
      backoff: { type: 'exponential', delay: this.opts.retryDelayMs },
      removeOnComplete: { age: Math.ceil(this.opts.keepCompletedMs / 1000) },
      removeOnFail: false,
    });
    // BullMQ answers an existing job id with that job: another request took the id first
    if (job.data.requestId !== r.requestId) throw inferenceIdInUse(r.endpoint, id);
    this.depths.set(r.endpoint, (this.depths.get(r.endpoint) ?? 0) + 1);
    return id;
  }

  async status(endpoint: string, id: string): Promise<AsyncRequestStatus | undefined> {
    return this.read(endpoint, undefined, (q) => currentStatus(q, jobIdOf(id)));
  }

  list(endpoint: string, limit: number): Promise<AsyncRequestList> {
    const none: AsyncRequestList = { counts: { queued: 0, running: 0, failed: 0, completed: 0 }, recent: [], failed: [] };
    return this.read(endpoint, none, (q) => this.listOf(q, limit));
  }

  private async listOf(q: Queue<JobData, string>, limit: number): Promise<AsyncRequestList> {
    const c = await q.getJobCounts(...QUEUED, 'active', 'completed', 'failed');
    const queued = QUEUED.reduce((a, t) => a + (c[t] ?? 0), 0);
    const jobs = limit > 0 ? (await q.getJobs([...QUEUED, 'active', 'completed', 'failed'], 0, limit - 1)).filter(Boolean) : [];
    const newest = jobs.sort((a, b) => b.data.receivedAt - a.data.receivedAt).slice(0, limit);
    const recent = (await Promise.all(newest.map((j) => currentStatus(q, j.id!)))).filter((r) => r !== undefined);
    const failed = (await q.getFailed(0, -1)).filter(Boolean).map(failedItemOf);
    return { counts: { queued, running: c.active ?? 0, failed: c.failed ?? 0, completed: c.completed ?? 0 }, recent, failed };
  }

  /** Applies `fn` to the failed jobs named (all when none are); an id that is not a failed request is a 404. */
  private eachFailed(endpoint: string, ids: string[] | undefined, fn: (j: RequestJob) => Promise<unknown>): Promise<number> {
    return this.read(endpoint, 0, async (q) => {
      let jobs = (await q.getFailed(0, -1)).filter(Boolean);
      if (ids?.length) {
        const unknown = ids.find((id) => !jobs.some((j) => j.data.id === id));
        if (unknown !== undefined) throw Errors.NotFound(`Endpoint ${endpoint} has no failed request ${unknown}.`, idsHint(endpoint));
        jobs = jobs.filter((j) => ids.includes(j.data.id));
      }
      for (const j of jobs) await fn(j);
      return jobs.length;
    });
  }

  replay(endpoint: string, ids?: string[]): Promise<number> {
    return this.eachFailed(endpoint, ids, async (j) => {
      await j.updateData({ ...j.data, receivedAt: Date.now(), throttles: 0, lastError: undefined });
      await j.retry('failed', { resetAttemptsMade: true, resetAttemptsStarted: true });
    });
  }

  purge(endpoint: string, ids?: string[]): Promise<number> {
    return this.eachFailed(endpoint, ids, (j) => j.remove());
  }

  depth(endpoint: string): number {
    return this.depths.get(endpoint) ?? 0;
  }

  async start(runner: AsyncRunner): Promise<void> {
    this.runner = runner;
    this.handBack = new Promise((resolve) => (this.releaseRuns = resolve));
    // the endpoints with a queue in Redis, including those of requests stored by an earlier daemon
    const meta = new RegExp(`^${PREFIX}:${this.name('')}(.+):meta$`);
    let cursor = '0';
    do {
      const [next, keys] = await this.redis.client.scan(cursor, 'MATCH', `${PREFIX}:${this.name('')}*:meta`, 'COUNT', 500);
      cursor = next;
      for (const k of keys) this.queue(meta.exec(k)![1]!);
    } while (cursor !== '0');
    await Promise.all([...this.workers.values()].map((w) => w.waitUntilReady()));
    await this.refresh();
    this.refresher = setInterval(() => void this.refresh().catch(() => {}), this.opts.pollMs);
    this.refresher.unref();
  }

  private async refresh(): Promise<void> {
    for (const [endpoint, q] of this.queues) {
      const c = await q.getJobCounts(...QUEUED, 'active');
      this.depths.set(endpoint, Object.values(c).reduce((a, n) => a + n, 0));
    }
  }

  private worker(endpoint: string, runner: AsyncRunner): Worker<JobData, string> {
    const w = new Worker<JobData, string>(this.name(endpoint), (job, token) => this.process(job, token, runner), {
      connection: this.redis.connection,
      prefix: PREFIX,
      concurrency: this.opts.perEndpointConcurrency,
      lockDuration: this.opts.lockMs,
      // a lock left by a killed daemon is looked for twice per lock period
      stalledInterval: Math.max(500, this.opts.lockMs / 2),
      // a request whose daemon keeps dying with it runs 1 + maxRetries times, like one that fails
      maxStalledCount: this.opts.maxRetries,
    });
    w.on('error', () => {}); // reconnects with backoff; a run cut off returns to the queue when its lock expires
    w.on('completed', (job) => runner.completed(refOf(job.data)));
    w.on('failed', (job, err) => {
      // also called for a failed run BullMQ retries: only the last one goes to the failure list
      if (job?.finishedOn) runner.failed(refOf(job.data), err instanceof FinalError ? err.reason : 'retries', job.failedReason);
    });
    return w;
  }

  private async process(job: RequestJob, token: string | undefined, runner: AsyncRunner): Promise<string> {
    const d = job.data;
    const maxAgeMs = d.maxAgeMs ?? this.opts.maxAgeMs;
    const lastError = job.failedReason || d.lastError;
    if (!runner.has(d.endpoint)) throw new FinalError('The endpoint was deleted.', 'deleted');
    if (Date.now() - d.receivedAt > maxAgeMs) throw new FinalError(`It was not run within its maximum request age (${shortDuration(maxAgeMs)}).${lastError ? ` Last error: ${lastError}` : ''}`, 'age');
    let result: string | undefined;
    try {
      // at close, a run still going after the grace period is handed back, as the SQLite queue does
      result = await Promise.race([runner.run({ ...refOf(d), requestId: d.requestId, payload: d.payload }), this.handBack!.then(() => undefined)]);
    } catch (e) {
      const message = errorMessage(e);
      if (isPermanent(e)) throw new FinalError(message, 'invalid');
      if (!isThrottle(e)) throw new Error(message); // BullMQ retries it with backoff, up to 1 + maxRetries runs
      const throttles = d.throttles + 1;
      const next = Date.now() + Math.min(this.opts.throttleDelayMs * 2 ** (throttles - 1), this.opts.maxThrottleDelayMs);
      if (next - d.receivedAt > maxAgeMs) throw new FinalError(`Its next try would be past its maximum request age (${shortDuration(maxAgeMs)}). Last error: ${message}`, 'age');
      // an overloaded try is not a run: delayed without using one of BullMQ's attempts
      await job.updateData({ ...d, throttles, lastError: message });
      await job.moveToDelayed(next, token);
      throw new DelayedError();
    }
    if (result === undefined) {
      await job.moveToWait(token);
      throw new WaitingError();
    }
    return result;
  }

  /** Stops taking requests; runs still going after the grace period are handed back to the queue. */
  async close(): Promise<void> {
    clearInterval(this.refresher);
    const grace = setTimeout(() => this.releaseRuns?.(), this.opts.closeGraceMs);
    try {
      await Promise.all([...this.workers.values()].map((w) => w.close()));
    } finally {
      clearTimeout(grace);
    }
    await Promise.all([...this.queues.values()].map((q) => q.close()));
    this.redis.client.disconnect();
  }
}

/**
 * A request's status, its state read before its job: a job read first could be finished between
 * the two reads and show as failed without its error, or completed without its output.
 */
async function currentStatus(q: Queue<JobData, string>, jobId: string): Promise<AsyncRequestStatus | undefined> {
  const state = await q.getJobState(jobId);
  if (state === 'unknown') return undefined;
  const job = await q.getJob(jobId);
  return job && statusOf(job, state);
}

function statusOf(job: RequestJob, state: string): AsyncRequestStatus {
  const d = job.data;
  const status = stateOf(state);
  const lastError = job.failedReason || d.lastError;
  return {
    id: d.id,
    endpoint: d.endpoint,
    status,
    input: d.payload.input,
    outputLocation: outputLocation(d.endpoint, d.id),
    receivedAt: new Date(d.receivedAt).toISOString(),
    ...(status === 'completed' && job.finishedOn ? { completedAt: new Date(job.finishedOn).toISOString() } : {}),
    ...(status === 'failed' && job.finishedOn ? { failedAt: new Date(job.finishedOn).toISOString() } : {}),
    attempts: job.attemptsMade,
    ...(lastError && status !== 'completed' ? { lastError } : {}),
    ...(status === 'completed' ? { output: job.returnvalue } : {}),
  };
}

const failedItemOf = (job: RequestJob): FailedItem => ({
  id: job.data.id,
  requestId: job.data.requestId,
  status: 'failed',
  receivedAt: new Date(job.data.receivedAt).toISOString(),
  failedAt: new Date(job.finishedOn ?? job.data.receivedAt).toISOString(),
  attempts: job.attemptsMade,
  lastError: job.failedReason ?? '',
  bytes: Buffer.byteLength(JSON.stringify(job.data.payload)),
});
