import type { Logger } from 'pino';
import { Errors, KennelError } from '../core/index.js';
import { fetchImage, postJson, type SafeFetchOptions } from '../net/index.js';
import { DurableQueue, itemCounts, listFailedItems, purgeItems, replayItems, type FailedItem, type ItemCounts, type QueueOptions, type QueueRow, type QueueTables, type Workspace } from '../store/index.js';
import { checkImage, DEFAULT_MAX_IMAGE_BYTES } from './request.js';
import type { Router } from './router.js';

/**
 * Asynchronous inference (SageMaker's InvokeEndpointAsync): a request names its input (an
 * artifact of the workspace, `kennel://artifacts/SHA256` as `kennel artifacts upload` prints it,
 * or an https URL fetched through the safe fetcher), is stored in the workspace's durable queue
 * (src/store/queue.ts, table endpoint_requests) before the 202, and runs in the background
 * through the endpoint's router like a synchronous invocation (so a scaled-to-zero endpoint
 * starts a replica for it). The answer is written to the artifact store; its location is known
 * at the 202: `kennel://endpoints/NAME/requests/ID/output`.
 */

const TABLES: QueueTables = { items: 'endpoint_requests', payloads: 'endpoint_request_payloads', owner: 'endpoint', noun: 'request', maxAge: 'max_age_ms' };

export interface AsyncInferenceOptions extends Partial<QueueOptions> {
  /** runs of one endpoint's requests at once (more wait in the queue; the router's in-flight limit still applies) */
  perEndpointConcurrency?: number;
  /** a request not answered within this long (since it was received) fails, unless it names its own (X-Amzn-SageMaker-RequestTTLSeconds) */
  maxAgeMs?: number;
  /** runs after the first, for errors that are not the input's fault */
  maxRetries?: number;
  /** completed requests are kept this long for their status (their answer artifacts until kennel gc after that) */
  keepCompletedMs?: number;
  maxImageBytes?: number;
  /** how completion notifications are sent: only tests loosen the safe fetcher's rules (allowHttp, allowPrivate) */
  notify?: SafeFetchOptions;
}

export const ASYNC_DEFAULTS: Required<AsyncInferenceOptions> = {
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
  maxImageBytes: DEFAULT_MAX_IMAGE_BYTES,
  notify: {},
};

/** What an accepted request is told (the SageMaker response's members). */
export interface AsyncAccepted {
  InferenceId: string;
  OutputLocation: string;
  FailureLocation: string;
}

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

interface Payload {
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

/** One request's status, or undefined. */
export function asyncRequest(ws: Workspace, endpoint: string, id: string): AsyncRequestStatus | undefined {
  const r = ws.db.prepare('SELECT id, endpoint, status, input, received_at, completed_at, failed_at, attempts, last_error, output FROM endpoint_requests WHERE endpoint = ? AND id = ?').get(endpoint, id) as StatusRow | undefined;
  return r && statusOf(r);
}

/** An endpoint's requests: counts, the newest `limit` (any status), and the failure list. */
export function asyncRequests(ws: Workspace, endpoint: string, limit = 50): { counts: ItemCounts & { completed: number }; recent: AsyncRequestStatus[]; failed: FailedItem[] } {
  const completed = (ws.db.prepare("SELECT count(*) AS n FROM endpoint_requests WHERE endpoint = ? AND status = 'completed'").get(endpoint) as { n: number }).n;
  const recent = (ws.db.prepare('SELECT id, endpoint, status, input, received_at, completed_at, failed_at, attempts, last_error, output FROM endpoint_requests WHERE endpoint = ? ORDER BY seq DESC LIMIT ?').all(endpoint, limit) as StatusRow[]).map(statusOf);
  return { counts: { ...itemCounts(ws, TABLES, endpoint), completed }, recent, failed: listFailedItems(ws, TABLES, endpoint) };
}

const idsHint = (endpoint: string) => `kennel endpoints requests ${endpoint} lists them.`;
/** Queues an endpoint's failed requests again (all, or those named). */
export const replayAsyncRequests = (ws: Workspace, endpoint: string, ids?: string[]): number => replayItems(ws, TABLES, endpoint, ids, idsHint(endpoint));
/** Deletes an endpoint's failed requests (all, or those named). */
export const purgeAsyncRequests = (ws: Workspace, endpoint: string, ids?: string[]): number => purgeItems(ws, TABLES, endpoint, ids, idsHint(endpoint));

/** The daemon's asynchronous inference: accepts requests and runs them on the durable queue. */
export class AsyncInference {
  private readonly opts: Required<AsyncInferenceOptions>;
  private readonly queue: DurableQueue<string>;
  private pruner?: NodeJS.Timeout;

  constructor(
    private readonly ws: Workspace,
    private readonly router: Router,
    private readonly log: Logger,
    opts: AsyncInferenceOptions = {},
  ) {
    this.opts = { ...ASYNC_DEFAULTS, ...opts };
    const o = this.opts;
    this.queue = new DurableQueue<string>(
      ws,
      TABLES,
      {
        find: (endpoint) => (router.has(endpoint) ? endpoint : undefined),
        name: (endpoint) => endpoint,
        maxRetries: () => o.maxRetries,
        maxAgeMs: (_, row) => row.max_age_ms ?? o.maxAgeMs,
        concurrency: () => o.perEndpointConcurrency,
        run: (endpoint, payload, row) => this.run(endpoint, JSON.parse(payload.toString('utf8')) as Payload, row),
        // overload (503), the endpoint's deadline (504), a replica that died twice: tried again until the request is too old
        isThrottle: (e) => e instanceof KennelError && [429, 500, 502, 503, 504].includes(e.status),
        // the input itself is bad (not an image, not found, refused by the fetcher): no retry helps
        isPermanent: (e) => e instanceof KennelError && e.status >= 400 && e.status < 500 && e.status !== 429,
        succeeded: (row, sha) => {
          ws.db.prepare("UPDATE endpoint_requests SET status = 'completed', output = ?, completed_at = ?, last_error = NULL WHERE seq = ?").run(sha as string, Date.now(), row.seq);
          ws.db.prepare('DELETE FROM endpoint_request_payloads WHERE seq = ?').run(row.seq);
          this.notify(row, { InferenceId: row.id, status: 'completed', OutputLocation: outputLocation(row.owner, row.id) });
        },
        failed: (row, reason, message) => {
          log.info({ endpoint: row.owner, inferenceId: row.id, reason, error: message }, 'asynchronous request failed');
          this.notify(row, { InferenceId: row.id, status: 'failed', FailureLocation: failureLocation(row.owner, row.id), error: message });
        },
      },
      { maxItemsPerOwner: o.maxItemsPerOwner, maxItems: o.maxItems, maxBytes: o.maxBytes, concurrency: o.concurrency, maxRunningBytes: o.maxRunningBytes, retryDelayMs: o.retryDelayMs, throttleDelayMs: o.throttleDelayMs, maxThrottleDelayMs: o.maxThrottleDelayMs, pollMs: o.pollMs, closeGraceMs: o.closeGraceMs },
    );
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
    if (opts.inferenceId !== undefined && asyncRequest(this.ws, endpoint, opts.inferenceId)) throw Errors.Conflict(`Endpoint ${endpoint} already has a request with inference id ${opts.inferenceId}.`, 'Use a new inference id, or leave it out.');
    const payload = Buffer.from(JSON.stringify({ input, topK: opts.topK, ...(opts.timeoutS ? { timeoutMs: opts.timeoutS * 1000 } : {}) } satisfies Payload));
    let id: string;
    try {
      id = this.queue.enqueue(endpoint, payload, opts.requestId, {
        id: opts.inferenceId,
        extra: { input, notify: opts.notify ?? null, max_age_ms: opts.ttlS ? opts.ttlS * 1000 : null },
        full: (message) => Errors.Throttled(message, `Retry later; kennel endpoints requests ${endpoint} lists failed requests, which count until replayed or purged.`),
      });
    } catch (e) {
      // two requests with the same new inference id at once: the UNIQUE column decides
      if ((e as { code?: string }).code === 'SQLITE_CONSTRAINT_UNIQUE') throw Errors.Conflict(`Inference id ${opts.inferenceId} is already used.`, 'Use a new inference id, or leave it out.');
      throw e;
    }
    return { InferenceId: id, OutputLocation: outputLocation(endpoint, id), FailureLocation: failureLocation(endpoint, id) };
  }

  /** Tells the request's notification URL, if it has one, of its outcome; a notification that cannot be sent is logged, not retried. */
  private notify(row: QueueRow, message: Record<string, string>): void {
    const { notify } = (this.ws.db.prepare('SELECT notify FROM endpoint_requests WHERE seq = ?').get(row.seq) as { notify: string | null } | undefined) ?? { notify: null };
    if (!notify) return;
    postJson(notify, message, this.opts.notify).then(
      (status) => {
        if (status >= 300) this.log.warn({ endpoint: row.owner, inferenceId: row.id, status }, 'the completion notification was answered with an error status');
      },
      (e: unknown) => this.log.warn({ endpoint: row.owner, inferenceId: row.id, err: (e as Error).message }, 'the completion notification could not be sent'),
    );
  }

  /** Requests of an endpoint stored but not finished (queued or running): its queue depth. */
  depth(endpoint: string): number {
    const c = itemCounts(this.ws, TABLES, endpoint);
    return c.queued + c.running;
  }

  start(): void {
    this.queue.start();
    this.pruner ??= setInterval(() => this.prune(), 60_000);
    this.pruner.unref();
  }

  async close(): Promise<void> {
    if (this.pruner) clearInterval(this.pruner);
    await this.queue.close();
  }

  /** Forgets completed requests older than keepCompletedMs (their answers go with the next kennel gc). */
  private prune(): void {
    try {
      this.ws.db.prepare("DELETE FROM endpoint_requests WHERE status = 'completed' AND completed_at < ?").run(Date.now() - this.opts.keepCompletedMs);
    } catch {
      // busy: the next round tries again
    }
  }

  private async run(endpoint: string, p: Payload, row: QueueRow): Promise<string> {
    const sha = artifactOfLocation(p.input);
    let image: Uint8Array;
    if (sha) {
      if (!(await this.ws.artifacts.has(sha))) throw Errors.NotFound(`The input artifact ${sha.slice(0, 12)}… is gone from the workspace.`, 'Upload it again and send a new request.');
      image = checkImage(await this.ws.artifacts.get(sha), this.opts.maxImageBytes);
    } else image = (await fetchImage(p.input, { maxBytes: this.opts.maxImageBytes })).bytes;
    const target = this.router.route(endpoint);
    const result = await this.router.invoke(p.timeoutMs ? { ...target, timeoutMs: p.timeoutMs } : target, image, { topK: p.topK, requestId: row.request_id });
    const answer = { predictions: result.predictions, model: result.model, variant: result.variant };
    return this.ws.artifacts.put(Buffer.from(JSON.stringify(answer)));
  }
}
