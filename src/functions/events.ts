import { KennelError } from '../core/index.js';
import { ThrottledError } from '../security/index.js';
import { DurableQueue, enqueueItem, itemCounts, listFailedItems, purgeItems, replayItems, type FailedItem, type ItemCounts, type QueueTables, type Workspace } from '../store/index.js';
import type { FunctionMetrics } from './metrics.js';
import { findFunction, type FunctionDefinition } from './store.js';

/** Bounds and timings of the asynchronous-invocation queue; the defaults are what the daemon uses. */
export interface EventQueueOptions {
  /** stored events (waiting, running or failed) per function before 429 */
  maxEventsPerFunction?: number;
  /** stored events of all functions before 429 */
  maxEvents?: number;
  /** stored payload bytes of all functions before 429 */
  maxBytes?: number;
  /** events running at once, over all functions (each function also keeps to its own concurrency) */
  concurrency?: number;
  /** payload bytes of the events running at once (one event runs whatever its size) */
  maxRunningBytes?: number;
  /** wait before the first retry of a failed run, doubling after (Lambda: 1 min, then 2 min) */
  retryDelayMs?: number;
  /** wait after the first throttled try, doubling up to maxThrottleDelayMs */
  throttleDelayMs?: number;
  maxThrottleDelayMs?: number;
  /** how often due retries and replays from the CLI are looked for */
  pollMs?: number;
  /** at close, how long running events may finish before they are handed back to the queue */
  closeGraceMs?: number;
}

export const EVENT_QUEUE_DEFAULTS: Required<EventQueueOptions> = {
  maxEventsPerFunction: 1000,
  maxEvents: 10_000,
  maxBytes: 1024 ** 3,
  concurrency: 16,
  maxRunningBytes: 16 * 1024 ** 2,
  retryDelayMs: 60_000,
  throttleDelayMs: 1000,
  maxThrottleDelayMs: 300_000,
  pollMs: 1000,
  closeGraceMs: 5000,
};

/** An event in the failure list of `kennel functions events NAME`. */
export type FailedEvent = FailedItem;
export type EventCounts = ItemCounts;

/** The queue's tables (migration 6). */
const TABLES: QueueTables = { items: 'function_events', payloads: 'function_event_payloads', owner: 'function', noun: 'event' };

const fullError = (fn: string) => (message: string) => new ThrottledError(message, `Retry later; kennel functions events ${fn} lists failed events, which count until replayed (--replay) or purged (--purge).`, 1);
const idsHint = (fn: string) => `kennel functions events ${fn} lists them.`;

/**
 * Stores an event before it is acknowledged, or refuses it with 429 when the queue is full.
 * Failed events count against the limits until they are replayed or purged, so a full queue
 * never makes room by forgetting one.
 */
export function enqueueEvent(ws: Workspace, fn: string, payload: Uint8Array, requestId: string, opts: EventQueueOptions = {}): string {
  const limits = { ...EVENT_QUEUE_DEFAULTS, ...opts };
  return enqueueItem(ws, TABLES, fn, payload, requestId, { maxItemsPerOwner: limits.maxEventsPerFunction, maxItems: limits.maxEvents, maxBytes: limits.maxBytes, full: fullError(fn) });
}

export const listFailedEvents = (ws: Workspace, fn: string): FailedEvent[] => listFailedItems(ws, TABLES, fn);

export const eventCounts = (ws: Workspace, fn: string): EventCounts => itemCounts(ws, TABLES, fn);

/** Queues failed events again as new ones: attempts and age start over. A running daemon picks them up within a second. */
export const replayEvents = (ws: Workspace, fn: string, ids?: string[]): number => replayItems(ws, TABLES, fn, ids, idsHint(fn));

/** Deletes failed events (their payloads go with them). */
export const purgeEvents = (ws: Workspace, fn: string, ids?: string[]): number => purgeItems(ws, TABLES, fn, ids, idsHint(fn));

/** What the queue needs of the gateway. */
export interface EventRunner {
  /** runs an event as a synchronous invocation does (throws ThrottledError at the concurrency limit) */
  run(fn: string, event: unknown, requestId: string): Promise<unknown>;
  /** the most concurrent executions of a function */
  concurrencyLimit(def: FunctionDefinition): number;
}

/**
 * Runs stored asynchronous invocations (Lambda's `Event` type) on the workspace's durable queue
 * (src/store/queue.ts): oldest due first, within each function's concurrency and the queue's own
 * bounds on events and payload bytes running at once. A failed run is retried with exponential
 * backoff up to the function's maxRetries; throttled tries (the function at its concurrency
 * limit, an overloaded endpoint) and system errors (500, 503) are retried until the event is
 * older than its maxEventAgeSeconds; then the event goes to the failure list. An event running
 * when the daemon dies is run again after the restart (delivery is at least once, as on Lambda).
 */
export class EventQueue {
  private readonly limits: Required<EventQueueOptions>;
  private readonly queue: DurableQueue<FunctionDefinition>;

  constructor(
    private readonly ws: Workspace,
    runner: EventRunner,
    private readonly metrics: FunctionMetrics,
    opts: EventQueueOptions = {},
  ) {
    this.limits = { ...EVENT_QUEUE_DEFAULTS, ...opts };
    const l = this.limits;
    this.queue = new DurableQueue<FunctionDefinition>(
      ws,
      TABLES,
      {
        find: (fn) => findFunction(ws, fn),
        name: (def) => def.name,
        maxRetries: (def) => def.maxRetries,
        maxAgeMs: (def) => def.maxEventAgeSeconds * 1000,
        concurrency: (def) => runner.concurrencyLimit(def),
        run: (def, payload, row) => runner.run(def.name, JSON.parse(payload.toString('utf8')), row.request_id),
        // as on Lambda: throttles and system errors are retried until the event is too old, not counted as runs
        isThrottle: (e) => e instanceof ThrottledError || (e instanceof KennelError && (e.status === 500 || e.status === 503)),
        retried: (fn, reason) => metrics.eventsRetried.inc({ function: fn, reason }),
        failed: (row, reason) => metrics.eventsFailed.inc({ function: row.owner, reason }),
      },
      { maxItemsPerOwner: l.maxEventsPerFunction, maxItems: l.maxEvents, maxBytes: l.maxBytes, concurrency: l.concurrency, maxRunningBytes: l.maxRunningBytes, retryDelayMs: l.retryDelayMs, throttleDelayMs: l.throttleDelayMs, maxThrottleDelayMs: l.maxThrottleDelayMs, pollMs: l.pollMs, closeGraceMs: l.closeGraceMs },
    );
    metrics.readEventCounts(() => ws.db.prepare('SELECT function, status, count(*) AS n FROM function_events GROUP BY function, status').all() as Array<{ function: string; status: string; n: number }>);
  }

  /** Stores an event (429 when the queue is full) and wakes the drainer; the caller answers 202 after this. */
  enqueue(fn: string, payload: Uint8Array, requestId: string): string {
    try {
      const id = this.queue.enqueue(fn, payload, requestId, { full: fullError(fn) });
      this.metrics.eventsAccepted.inc({ function: fn });
      return id;
    } catch (e) {
      if (e instanceof ThrottledError) this.metrics.eventsRejected.inc({ function: fn });
      throw e;
    }
  }

  /** Hands back events that were running when the daemon last died, then drains. */
  start(): void {
    this.queue.start();
  }

  /** Stops taking events; runs still going after the grace period are handed back to the queue. */
  async close(): Promise<void> {
    await this.queue.close();
    this.metrics.readEventCounts(() => []);
  }
}
