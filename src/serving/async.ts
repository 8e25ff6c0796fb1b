import type { Logger } from 'pino';
import { Errors, KennelError } from '../core/index.js';
import { fetchImage, postJson, type SafeFetchOptions } from '../net/index.js';
import { DurableQueue, enqueueItem, itemCounts, listFailedItems, purgeItems, replayItems, type FailedItem, type ItemCounts, type QueueOptions, type QueueRow, type QueueTables, type Workspace } from '../store/index.js';
import { checkImage, DEFAULT_MAX_IMAGE_BYTES } from './request.js';
import type { Router } from './router.js';

/**
 * Asynchronous inference (SageMaker's InvokeEndpointAsync): a request names its input (an
 * artifact of the workspace, `kennel://artifacts/SHA256` as `kennel artifacts upload` prints it,
 * or an https URL fetched through the safe fetcher), is stored before the 202 in an
 * AsyncRequestStore (the workspace's durable queue, src/store/queue.ts, table endpoint_requests;
 * or BullMQ on Redis when the daemon has a queue URL, ./async-redis.ts), and runs in the background
 * through the endpoint's router like a synchronous invocation (so a scaled-to-zero endpoint
 * starts a replica for it). The answer is written to the artifact store; its location is known
 * at the 202: `kennel://endpoints/NAME/requests/ID/output`.
 */

const TABLES: QueueTables = { items: 'endpoint_requests', payloads: 'endpoint_request_payloads', owner: 'endpoint', noun: 'request', maxAge: 'max_age_ms' };

export interface AsyncInferenceOptions extends Partial<QueueOptions> {
  /** redis:// URL: keep the requests in BullMQ queues on that Redis instead of the workspace's database */
  queue?: string;
  /** runs of one endpoint's requests at once (more wait in the queue; the router's in-flight limit still applies) */
  perEndpointConcurrency?: number;
  /** a request not answered within this long (since it was received) fails, unless it names its own (X-Amzn-SageMaker-RequestTTLSeconds) */
  maxAgeMs?: number;
  /** runs after the first, for errors that are not the input's fault */
  maxRetries?: number;
  /** completed requests are kept this long for their status (their answer artifacts until kennel gc after that) */
  keepCompletedMs?: number;
  /** Redis engine: a running request's lock, renewed while it runs; a request whose daemon was killed runs again this long after */
  lockMs?: number;
  maxImageBytes?: number;
  /** how completion notifications are sent: only tests loosen the safe fetcher's rules (allowHttp, allowPrivate) */
  notify?: SafeFetchOptions;
}

export const ASYNC_DEFAULTS: Required<Omit<AsyncInferenceOptions, 'queue'>> = {
  maxItemsPerOwner: 10_000,
  maxItems: 100_000,
  maxBytes: 256 * 1024 ** 2,
  concurrency: 64,
  maxRunningBytes: 16 * 1024 ** 2,
  retryDelayMs: 5000,
  throttleDelayMs: 200,
  maxThrottleDelayMs: 30_000,
  pollMs: 500,
  closeGraceMs: 5000,
  perEndpointConcurrency: 16,
  // SageMaker's default RequestTTLSeconds
  maxAgeMs: 6 * 3600_000,
  maxRetries: 2,
  keepCompletedMs: 24 * 3600_000,
  lockMs: 30_000,
  maxImageBytes: DEFAULT_MAX_IMAGE_BYTES,
  notify: {},
};

/** What an accepted request is told (the SageMaker response's members). */
export interface AsyncAccepted {
  InferenceId: string;
  OutputLocation: string;
  FailureLocation: string;
}

/** The settings a store runs by (the daemon's, with the defaults). */
export type AsyncStoreOptions = Omit<typeof ASYNC_DEFAULTS, 'notify' | 'maxImageBytes'>;

export interface AsyncRequestStatus {
  id: string;
  endpoint: string;
  status: 'queued' | 'running' | 'completed' | 'failed';
  input: string;
  outputLocation: string;
  receivedAt: string;
  completedAt?: string;
  failedAt?: string;
  attempts: number;
  lastError?: string;
  /** sha256 of the answer's artifact, once completed */
  output?: string;
}

/** What a stored request carries to its run. */
export interface AsyncPayload {
  input: string;
  topK: number;
  /** X-Amzn-SageMaker-InvocationTimeoutSeconds: the run's deadline instead of the endpoint's */
  timeoutMs?: number;
}

const ARTIFACT = /^kennel:\/\/artifacts\/([0-9a-f]{64})$/;
const ID = /^[A-Za-z0-9._:-]{1,64}$/;

export const outputLocation = (endpoint: string, id: string): string => `kennel://endpoints/${endpoint}/requests/${id}/output`;
export const failureLocation = (endpoint: string, id: string): string => `kennel://endpoints/${endpoint}/requests/${id}/error`;
/** The endpoint and request a `kennel://endpoints/NAME/requests/ID/output|error` location names. */
export function parseRequestLocation(location: string): { endpoint: string; id: string; part: 'output' | 'error' } | undefined {
  const m = /^kennel:\/\/endpoints\/([^/]+)\/requests\/([^/]+)\/(output|error)$/.exec(location);
  return m ? { endpoint: m[1]!, id: m[2]!, part: m[3] as 'output' | 'error' } : undefined;
}

/** The artifact sha256 a `kennel://artifacts/SHA256` location names. */
export const artifactOfLocation = (location: string): string | undefined => ARTIFACT.exec(location)?.[1];

/** Checks an input location before the request is accepted: a workspace artifact that exists, or an https URL. */
async function checkInput(ws: Workspace, location: string): Promise<void> {
  const sha = artifactOfLocation(location);
  if (sha) {
    if (!(await ws.artifacts.has(sha))) throw Errors.NotFound(`There is no artifact ${sha.slice(0, 12)}… in this workspace.`, 'Upload the input with kennel artifacts upload FILE and pass the location it prints.');
    return;
  }
  let url: URL;
  try {
    url = new URL(location);
  } catch {
    throw Errors.InvalidRequest('The input location is neither kennel://artifacts/SHA256 nor a URL.', 'Upload the input with kennel artifacts upload FILE, or give an https:// URL.');
  }
  if (url.protocol !== 'https:') throw Errors.InvalidRequest(`Input locations are kennel://artifacts/SHA256 or https:// URLs, not ${url.protocol}//.`, 'Upload the input with kennel artifacts upload FILE, or give an https:// URL.');
}

/** A notification URL is checked when the request is accepted: https (unless the daemon allows http), no user name or password. */
function checkNotifyUrl(raw: string, rules: SafeFetchOptions): void {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw Errors.InvalidRequest('The notification URL is not a URL.', 'Give an https:// URL, or leave it out.');
  }
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && rules.allowHttp)) throw Errors.InvalidRequest(`Notification URLs are https://, not ${url.protocol}//.`, 'Give an https:// URL, or leave it out.');
  if (url.username || url.password) throw Errors.InvalidRequest('Notification URLs with a user name or password are refused.');
}

/** An endpoint's requests: counts, the newest (any status), and the failure list. */
export interface AsyncRequestList {
  counts: ItemCounts & { completed: number };
  recent: AsyncRequestStatus[];
  failed: FailedItem[];
}

/** A request to store. */
export interface NewAsyncRequest {
  endpoint: string;
  /** the id of the HTTP request that sent it (logs, audit) */
  requestId: string;
  /** default: a random UUID */
  id?: string;
  payload: AsyncPayload;
  notify?: string;
  /** its own maximum age (X-Amzn-SageMaker-RequestTTLSeconds), else the daemon's */
  maxAgeMs?: number;
}

/** A stored request as its store hands it to the runner. */
export interface AsyncRun {
  endpoint: string;
  id: string;
  requestId: string;
  payload: AsyncPayload;
  notify?: string;
}

/** The request an outcome is about. */
export type AsyncRequestRef = Pick<AsyncRun, 'endpoint' | 'id' | 'notify'>;

/** What a store needs of the daemon to run requests: the endpoints, the run itself, and who to tell. */
export interface AsyncRunner {
  /** the endpoint exists (a request of a deleted one fails) */
  has(endpoint: string): boolean;
  /** runs a request; resolves to its answer's artifact sha256 */
  run(r: AsyncRun): Promise<string>;
  completed(r: AsyncRequestRef): void;
  failed(r: AsyncRequestRef, reason: 'retries' | 'age' | 'deleted' | 'invalid', message: string): void;
}

/**
 * Where asynchronous requests are kept and run from: the workspace's SQLite database (one daemon
 * runs them) or BullMQ on Redis. The daemon's routes and the CLI only see this; the CLI opens one
 * without start() to read, replay and purge.
 */
export interface AsyncRequestStore {
  /** stores a request before the 202: 429 when the queue is full, 409 for an inference id in use; resolves to its id */
  accept(r: NewAsyncRequest): Promise<string>;
  status(endpoint: string, id: string): Promise<AsyncRequestStatus | undefined>;
  list(endpoint: string, limit: number): Promise<AsyncRequestList>;
  /** queues failed requests again (all, or those named): attempts and age start over */
  replay(endpoint: string, ids?: string[]): Promise<number>;
  /** deletes failed requests (all, or those named) */
  purge(endpoint: string, ids?: string[]): Promise<number>;
  /** requests queued or running; synchronous, as the autoscaler reads it at every sample */
  depth(endpoint: string): number;
  /** runs stored requests (those a crash left running first) until closed */
  start(runner: AsyncRunner): Promise<void>;
  close(): Promise<void>;
}

/** Overload (503), the endpoint's deadline (504), a replica that died twice: tried again until the request is too old, not counted as a run. */
export const isThrottle = (e: unknown): boolean => e instanceof KennelError && [429, 500, 502, 503, 504].includes(e.status);
/** The input itself is bad (not an image, not found, refused by the fetcher): no retry helps. */
export const isPermanent = (e: unknown): boolean => e instanceof KennelError && e.status >= 400 && e.status < 500 && e.status !== 429;
/** The 429 of a full queue. */
export const queueFull = (message: string, endpoint: string): KennelError =>
  Errors.Throttled(message, `Retry later; kennel endpoints requests ${endpoint} lists failed requests, which count until replayed or purged.`);
export const inferenceIdInUse = (endpoint: string, id: string): KennelError => Errors.Conflict(`Endpoint ${endpoint} already has a request with inference id ${id}.`, 'Use a new inference id, or leave it out.');
export const idsHint = (endpoint: string): string => `kennel endpoints requests ${endpoint} lists them.`;

interface StatusRow {
  id: string;
  endpoint: string;
  status: AsyncRequestStatus['status'];
  input: string;
  received_at: number;
  completed_at: number | null;
  failed_at: number | null;
  attempts: number;
  last_error: string | null;
  output: string | null;
}

const statusOf = (r: StatusRow): AsyncRequestStatus => ({
  id: r.id,
  endpoint: r.endpoint,
  status: r.status,
  input: r.input,
  outputLocation: outputLocation(r.endpoint, r.id),
  receivedAt: new Date(r.received_at).toISOString(),
  ...(r.completed_at ? { completedAt: new Date(r.completed_at).toISOString() } : {}),
  ...(r.failed_at ? { failedAt: new Date(r.failed_at).toISOString() } : {}),
  attempts: r.attempts,
  ...(r.last_error ? { lastError: r.last_error } : {}),
  ...(r.output ? { output: r.output } : {}),
});

const STATUS_COLUMNS = 'id, endpoint, status, input, received_at, completed_at, failed_at, attempts, last_error, output';

/** The requests in the workspace's database: the DurableQueue shared with functions' Event invocations. */
export class SqliteRequests implements AsyncRequestStore {
  private queue?: DurableQueue<string>;
  private pruner?: NodeJS.Timeout;

  constructor(
    private readonly ws: Workspace,
    private readonly opts: AsyncStoreOptions,
  ) {}

  async accept(r: NewAsyncRequest): Promise<string> {
    if (r.id !== undefined && (await this.status(r.endpoint, r.id))) throw inferenceIdInUse(r.endpoint, r.id);
    const o = this.opts;
    try {
      const id = enqueueItem(this.ws, TABLES, r.endpoint, Buffer.from(JSON.stringify(r.payload)), r.requestId, {
        maxItemsPerOwner: o.maxItemsPerOwner,
        maxItems: o.maxItems,
        maxBytes: o.maxBytes,
        id: r.id,
        extra: { input: r.payload.input, notify: r.notify ?? null, max_age_ms: r.maxAgeMs ?? null },
        full: (message) => queueFull(message, r.endpoint),
      });
      this.queue?.wake();
      return id;
    } catch (e) {
      // two requests with the same new inference id at once: the UNIQUE column decides
      if ((e as { code?: string }).code === 'SQLITE_CONSTRAINT_UNIQUE') throw inferenceIdInUse(r.endpoint, r.id!);
      throw e;
    }
  }

  async status(endpoint: string, id: string): Promise<AsyncRequestStatus | undefined> {
    const r = this.ws.db.prepare(`SELECT ${STATUS_COLUMNS} FROM endpoint_requests WHERE endpoint = ? AND id = ?`).get(endpoint, id) as StatusRow | undefined;
    return r && statusOf(r);
  }

  async list(endpoint: string, limit: number): Promise<AsyncRequestList> {
    const completed = (this.ws.db.prepare("SELECT count(*) AS n FROM endpoint_requests WHERE endpoint = ? AND status = 'completed'").get(endpoint) as { n: number }).n;
    const recent = (this.ws.db.prepare(`SELECT ${STATUS_COLUMNS} FROM endpoint_requests WHERE endpoint = ? ORDER BY seq DESC LIMIT ?`).all(endpoint, limit) as StatusRow[]).map(statusOf);
    return { counts: { ...itemCounts(this.ws, TABLES, endpoint), completed }, recent, failed: listFailedItems(this.ws, TABLES, endpoint) };
  }

  async replay(endpoint: string, ids?: string[]): Promise<number> {
    return replayItems(this.ws, TABLES, endpoint, ids, idsHint(endpoint));
  }

  async purge(endpoint: string, ids?: string[]): Promise<number> {
    return purgeItems(this.ws, TABLES, endpoint, ids, idsHint(endpoint));
  }

  depth(endpoint: string): number {
    const c = itemCounts(this.ws, TABLES, endpoint);
    return c.queued + c.running;
  }

  async start(runner: AsyncRunner): Promise<void> {
    const o = this.opts;
    const refOf = (row: QueueRow): AsyncRequestRef => {
      const { notify } = (this.ws.db.prepare('SELECT notify FROM endpoint_requests WHERE seq = ?').get(row.seq) as { notify: string | null } | undefined) ?? { notify: null };
      return { endpoint: row.owner, id: row.id, ...(notify ? { notify } : {}) };
    };
    this.queue = new DurableQueue<string>(
      this.ws,
      TABLES,
      {
        find: (endpoint) => (runner.has(endpoint) ? endpoint : undefined),
        name: (endpoint) => endpoint,
        maxRetries: () => o.maxRetries,
        maxAgeMs: (_, row) => row.max_age_ms ?? o.maxAgeMs,
        concurrency: () => o.perEndpointConcurrency,
        run: (_, payload, row) => runner.run({ ...refOf(row), requestId: row.request_id, payload: JSON.parse(payload.toString('utf8')) as AsyncPayload }),
        isThrottle,
        isPermanent,
        succeeded: (row, sha) => {
          this.ws.db.prepare("UPDATE endpoint_requests SET status = 'completed', output = ?, completed_at = ?, last_error = NULL WHERE seq = ?").run(sha as string, Date.now(), row.seq);
          this.ws.db.prepare('DELETE FROM endpoint_request_payloads WHERE seq = ?').run(row.seq);
          runner.completed(refOf(row));
        },
        failed: (row, reason, message) => runner.failed(refOf(row), reason, message),
      },
      { maxItemsPerOwner: o.maxItemsPerOwner, maxItems: o.maxItems, maxBytes: o.maxBytes, concurrency: o.concurrency, maxRunningBytes: o.maxRunningBytes, retryDelayMs: o.retryDelayMs, throttleDelayMs: o.throttleDelayMs, maxThrottleDelayMs: o.maxThrottleDelayMs, pollMs: o.pollMs, closeGraceMs: o.closeGraceMs },
    );
    this.queue.start();
    this.pruner ??= setInterval(() => this.prune(), 60_000);
    this.pruner.unref();
  }

  async close(): Promise<void> {
    if (this.pruner) clearInterval(this.pruner);
    await this.queue?.close();
  }

  /** Forgets completed requests older than keepCompletedMs (their answers go with the next kennel gc). */
  private prune(): void {
    try {
      this.ws.db.prepare("DELETE FROM endpoint_requests WHERE status = 'completed' AND completed_at < ?").run(Date.now() - this.opts.keepCompletedMs);
    } catch {
      // busy: the next round tries again
    }
  }
}

/** The store a daemon or CLI command uses: BullMQ on Redis with a queue URL, else the workspace's database. */
export async function openAsyncRequests(ws: Workspace, opts: AsyncInferenceOptions = {}): Promise<AsyncRequestStore> {
  const { queue, notify: _n, maxImageBytes: _m, ...o } = { ...ASYNC_DEFAULTS, ...opts };
  if (!queue) return new SqliteRequests(ws, o);
  // imported on demand, so a daemon without a queue does not load BullMQ
  const { RedisRequests } = await import('./async-redis.js');
  return RedisRequests.open(ws, queue, o);
}

/** The daemon's asynchronous inference: checks and accepts requests, and runs them from its store through the router. */
export class AsyncInference {
  private readonly opts: Required<Omit<AsyncInferenceOptions, 'queue'>>;

  private constructor(
    private readonly ws: Workspace,
    private readonly router: Router,
    private readonly log: Logger,
    readonly store: AsyncRequestStore,
    opts: AsyncInferenceOptions,
  ) {
    this.opts = { ...ASYNC_DEFAULTS, ...opts };
  }

  /** Opens the store (connects to Redis when given a queue URL: 503 when it cannot be reached). */
  static async open(ws: Workspace, router: Router, log: Logger, opts: AsyncInferenceOptions = {}): Promise<AsyncInference> {
    return new AsyncInference(ws, router, log, await openAsyncRequests(ws, opts), opts);
  }

  /**
   * Stores a request (429 when the queue is full, 4xx for a bad input location) and answers what
   * the 202 says. `notify`: a URL POSTed {InferenceId, status, OutputLocation | FailureLocation,
   * error} once the request completes or fails (the safe fetcher's rules: https, public addresses).
   * `ttlS` and `timeoutS` (the SageMaker headers, range-checked where they are parsed): the
   * request's own maximum age and the deadline of its run.
   */
  async accept(endpoint: string, input: string, opts: { topK: number; requestId: string; inferenceId?: string; notify?: string; ttlS?: number; timeoutS?: number }): Promise<AsyncAccepted> {
    if (!this.router.has(endpoint)) throw Errors.NotFound(`Endpoint ${endpoint} was not found.`, 'List endpoints with kennel endpoints list.');
    await checkInput(this.ws, input);
    if (opts.notify !== undefined) checkNotifyUrl(opts.notify, this.opts.notify);
    if (opts.inferenceId !== undefined && !ID.test(opts.inferenceId)) throw Errors.InvalidRequest('The inference id is not 1 to 64 letters, digits, dot, dash, underscore or colon.', 'Leave it out for a generated one.');
    const id = await this.store.accept({
      endpoint,
      requestId: opts.requestId,
      id: opts.inferenceId,
      payload: { input, topK: opts.topK, ...(opts.timeoutS ? { timeoutMs: opts.timeoutS * 1000 } : {}) },
      notify: opts.notify,
      maxAgeMs: opts.ttlS ? opts.ttlS * 1000 : undefined,
    });
    return { InferenceId: id, OutputLocation: outputLocation(endpoint, id), FailureLocation: failureLocation(endpoint, id) };
  }

  /** Requests of an endpoint stored but not finished (queued or running): its backlog. */
  depth(endpoint: string): number {
    return this.store.depth(endpoint);
  }

  start(): Promise<void> {
    return this.store.start({
      has: (endpoint) => this.router.has(endpoint),
      run: (r) => this.run(r),
      completed: (r) => this.notify(r, { InferenceId: r.id, status: 'completed', OutputLocation: outputLocation(r.endpoint, r.id) }),
      failed: (r, reason, message) => {
        this.log.info({ endpoint: r.endpoint, inferenceId: r.id, reason, error: message }, 'asynchronous request failed');
        this.notify(r, { InferenceId: r.id, status: 'failed', FailureLocation: failureLocation(r.endpoint, r.id), error: message });
      },
    });
  }

  close(): Promise<void> {
    return this.store.close();
  }

  /** Tells the request's notification URL, if it has one, of its outcome; a notification that cannot be sent is logged, not retried. */
  private notify(r: AsyncRequestRef, message: Record<string, string>): void {
    if (!r.notify) return;
    postJson(r.notify, message, this.opts.notify).then(
      (status) => {
        if (status >= 300) this.log.warn({ endpoint: r.endpoint, inferenceId: r.id, status }, 'the completion notification was answered with an error status');
      },
      (e: unknown) => this.log.warn({ endpoint: r.endpoint, inferenceId: r.id, err: (e as Error).message }, 'the completion notification could not be sent'),
    );
  }

  private async run({ endpoint, payload: p, requestId }: AsyncRun): Promise<string> {
    const sha = artifactOfLocation(p.input);
    let image: Uint8Array;
    if (sha) {
      if (!(await this.ws.artifacts.has(sha))) throw Errors.NotFound(`The input artifact ${sha.slice(0, 12)}… is gone from the workspace.`, 'Upload it again and send a new request.');
      image = checkImage(await this.ws.artifacts.get(sha), this.opts.maxImageBytes);
    } else image = (await fetchImage(p.input, { maxBytes: this.opts.maxImageBytes })).bytes;
    const target = this.router.route(endpoint);
    const result = await this.router.invoke(p.timeoutMs ? { ...target, timeoutMs: p.timeoutMs } : target, image, { topK: p.topK, requestId });
    const answer = { predictions: result.predictions, model: result.model, variant: result.variant };
    return this.ws.artifacts.put(Buffer.from(JSON.stringify(answer)));
  }
}
