import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { Errors, KennelError } from '../core/index.js';
import { ThrottledError } from '../security/index.js';
import type { Workspace } from '../store/index.js';
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
export interface FailedEvent {
  id: string;
  requestId: string;
  status: 'failed';
  receivedAt: string;
  failedAt: string;
  attempts: number;
  lastError: string;
  bytes: number;
}

export interface EventCounts {
  /** waiting for their (next) run */
  queued: number;
  running: number;
  failed: number;
}

interface Row {
  seq: number;
  id: string;
  function: string;
  request_id: string;
  bytes: number;
  attempts: number;
  throttles: number;
  received_at: number;
  last_error: string | null;
  failed_at: number | null;
}

const COLUMNS = 'seq, id, function, request_id, bytes, attempts, throttles, received_at, last_error, failed_at';

/**
 * Stores an event before it is acknowledged, or refuses it with 429 when the queue is full.
 * Failed events count against the limits until they are replayed or purged, so a full queue
 * never makes room by forgetting one.
 */
export function enqueueEvent(ws: Workspace, fn: string, payload: Uint8Array, requestId: string, opts: EventQueueOptions = {}): string {
  const limits = { ...EVENT_QUEUE_DEFAULTS, ...opts };
  return ws.db.transaction(() => {
    const mine = (ws.db.prepare('SELECT count(*) AS n FROM function_events WHERE function = ?').get(fn) as { n: number }).n;
    const all = ws.db.prepare('SELECT count(*) AS n, coalesce(sum(bytes), 0) AS bytes FROM function_events').get() as { n: number; bytes: number };
    const hint = `Retry later; kennel functions events ${fn} lists failed events, which count until replayed (--replay) or purged (--purge).`;
    if (mine >= limits.maxEventsPerFunction) throw new ThrottledError(`The asynchronous queue of function ${fn} is full (${mine} events waiting, running or failed).`, hint, 1);
    if (all.n >= limits.maxEvents || all.bytes + payload.length > limits.maxBytes) {
      throw new ThrottledError(`The asynchronous queue is full (${all.n} events, ${Math.round(all.bytes / 1024 ** 2)} MiB, of all functions).`, hint, 1);
    }
    const id = randomUUID();
    const t = Date.now();
    const { lastInsertRowid } = ws.db
      .prepare(`INSERT INTO function_events (id, function, request_id, status, bytes, received_at, next_attempt_at) VALUES (?, ?, ?, 'queued', ?, ?, ?)`)
      .run(id, fn, requestId, payload.length, t, t);
    ws.db.prepare('INSERT INTO function_event_payloads (seq, payload) VALUES (?, ?)').run(lastInsertRowid, payload);
    return id;
  })();
}

export function listFailedEvents(ws: Workspace, fn: string): FailedEvent[] {
  const rows = ws.db.prepare(`SELECT ${COLUMNS} FROM function_events WHERE function = ? AND status = 'failed' ORDER BY seq`).all(fn) as Row[];
  return rows.map((r) => ({
    id: r.id,
    requestId: r.request_id,
    status: 'failed',
    receivedAt: new Date(r.received_at).toISOString(),
    failedAt: new Date(r.failed_at ?? r.received_at).toISOString(),
    attempts: r.attempts,
    lastError: r.last_error ?? '',
    bytes: r.bytes,
  }));
}

export function eventCounts(ws: Workspace, fn: string): EventCounts {
  const counts: EventCounts = { queued: 0, running: 0, failed: 0 };
  for (const r of ws.db.prepare('SELECT status, count(*) AS n FROM function_events WHERE function = ? GROUP BY status').all(fn) as Array<{ status: keyof EventCounts; n: number }>) counts[r.status] = r.n;
  return counts;
}

/** The failed events named (all of the function's when none are), as `WHERE` terms. */
function failedOf(fn: string, ids: string[] | undefined): { where: string; params: unknown[] } {
  return ids?.length
    ? { where: `function = ? AND status = 'failed' AND id IN (SELECT value FROM json_each(?))`, params: [fn, JSON.stringify(ids)] }
    : { where: `function = ? AND status = 'failed'`, params: [fn] };
}

function checkIds(ws: Workspace, fn: string, ids: string[] | undefined): void {
  if (!ids?.length) return;
  const known = new Set(listFailedEvents(ws, fn).map((e) => e.id));
  const unknown = ids.filter((id) => !known.has(id));
  if (unknown.length) throw Errors.NotFound(`Function ${fn} has no failed event ${unknown[0]}.`, `kennel functions events ${fn} lists them.`);
}

/** Queues failed events again as new ones: attempts and age start over. A running daemon picks them up within a second. */
export function replayEvents(ws: Workspace, fn: string, ids?: string[]): number {
  return ws.db.transaction(() => {
    checkIds(ws, fn, ids);
    const { where, params } = failedOf(fn, ids);
    const t = Date.now();
    return ws.db.prepare(`UPDATE function_events SET status = 'queued', attempts = 0, throttles = 0, received_at = ?, next_attempt_at = ?, last_error = NULL, failed_at = NULL WHERE ${where}`).run(t, t, ...params).changes;
  })();
}

/** Deletes failed events (their payloads go with them). */
export function purgeEvents(ws: Workspace, fn: string, ids?: string[]): number {
  return ws.db.transaction(() => {
    checkIds(ws, fn, ids);
    const { where, params } = failedOf(fn, ids);
    return ws.db.prepare(`DELETE FROM function_events WHERE ${where}`).run(...params).changes;
  })();
}

/** What the queue needs of the gateway. */
export interface EventRunner {
  /** runs an event as a synchronous invocation does (throws ThrottledError at the concurrency limit) */
  run(fn: string, event: unknown, requestId: string): Promise<unknown>;
  /** the most concurrent executions of a function */
  concurrencyLimit(def: FunctionDefinition): number;
}

const duration = (ms: number) => (ms % 3_600_000 === 0 ? `${ms / 3_600_000}h` : ms % 60_000 === 0 ? `${ms / 60_000}m` : `${ms / 1000}s`);

/**
 * Runs stored asynchronous invocations (Lambda's `Event` type): oldest due first, within each
 * function's concurrency and the queue's own bounds on events and payload bytes running at once,
 * so payloads are read from the database only when they run. A failed run is retried with
 * exponential backoff up to the function's maxRetries; throttled tries (the function at its
 * concurrency limit, an overloaded endpoint) are retried until the event is older than its
 * maxEventAgeSeconds; then the event goes to the failure list. An event running when the daemon
 * dies is run again after the restart (delivery is at least once, as on Lambda).
 */
export class EventQueue {
  private readonly opts: Required<EventQueueOptions>;
  /** running events: seq -> its run */
  private readonly running = new Map<number, Promise<void>>();
  private readonly runningByFunction = new Map<string, number>();
  private runningBytes = 0;
  private timer?: NodeJS.Timeout;
  private wakeScheduled = false;
  private closing = false;
  /** after close: late results of handed-back runs must not touch the database */
  private stopped = false;

  constructor(
    private readonly ws: Workspace,
    private readonly runner: EventRunner,
    private readonly metrics: FunctionMetrics,
    opts: EventQueueOptions = {},
  ) {
    this.opts = { ...EVENT_QUEUE_DEFAULTS, ...opts };
    metrics.readEventCounts(() => ws.db.prepare('SELECT function, status, count(*) AS n FROM function_events GROUP BY function, status').all() as Array<{ function: string; status: string; n: number }>);
  }

  /** Stores an event (429 when the queue is full) and wakes the drainer; the caller answers 202 after this. */
  enqueue(fn: string, payload: Uint8Array, requestId: string): string {
    try {
      const id = enqueueEvent(this.ws, fn, payload, requestId, this.opts);
      this.metrics.eventsAccepted.inc({ function: fn });
      this.wake();
      return id;
    } catch (e) {
      if (e instanceof ThrottledError) this.metrics.eventsRejected.inc({ function: fn });
      throw e;
    }
  }

  /** Hands back events that were running when the daemon last died, then drains. */
  start(): void {
    const interrupted = this.ws.db.prepare(`SELECT ${COLUMNS} FROM function_events WHERE status = 'running'`).all() as Row[];
    for (const row of interrupted) this.afterFailure(row, findFunction(this.ws, row.function), 'The daemon stopped while the event ran.', 0);
    this.timer ??= setInterval(() => this.pump(), this.opts.pollMs);
    this.timer.unref();
    this.pump();
  }

  /** Stops taking events; runs still going after the grace period are handed back to the queue. */
  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    if (this.timer) clearInterval(this.timer);
    const grace = new AbortController();
    await Promise.race([Promise.allSettled(this.running.values()), sleep(this.opts.closeGraceMs, undefined, { signal: grace.signal }).catch(() => undefined)]);
    grace.abort();
    this.stopped = true;
    this.metrics.readEventCounts(() => []);
    for (const seq of this.running.keys()) {
      this.ws.db.prepare(`UPDATE function_events SET status = 'queued', attempts = attempts - 1, next_attempt_at = ? WHERE seq = ? AND status = 'running'`).run(Date.now(), seq);
    }
  }

  private wake(): void {
    if (this.wakeScheduled || !this.timer) return;
    this.wakeScheduled = true;
    setImmediate(() => {
      this.wakeScheduled = false;
      this.pump();
    });
  }

  /** Starts due events while there is room. */
  private pump(): void {
    if (this.closing) return;
    try {
      this.startDue();
    } catch {
      // the database is busy (a long CLI transaction): the next poll tries again
    }
  }

  private startDue(): void {
    const now = Date.now();
    // functions at their own concurrency are skipped, so their backlog never blocks others
    const saturated: string[] = [];
    while (this.running.size < this.opts.concurrency && (this.running.size === 0 || this.runningBytes < this.opts.maxRunningBytes)) {
      const row = this.ws.db
        .prepare(`SELECT ${COLUMNS} FROM function_events WHERE status = 'queued' AND next_attempt_at <= ? AND function NOT IN (SELECT value FROM json_each(?)) ORDER BY next_attempt_at, seq LIMIT 1`)
        .get(now, JSON.stringify(saturated)) as Row | undefined;
      if (!row) return;
      if (this.running.size > 0 && this.runningBytes + row.bytes > this.opts.maxRunningBytes) return;
      const def = findFunction(this.ws, row.function);
      if (!def) {
        this.fail(row, 'deleted', 'The function was deleted.');
        continue;
      }
      const maxAgeMs = def.maxEventAgeSeconds * 1000;
      if (now - row.received_at > maxAgeMs) {
        this.fail(row, 'age', `It was not run within its maximum event age (${duration(maxAgeMs)}).${row.last_error ? ` Last error: ${row.last_error}` : ''}`);
        continue;
      }
      const active = this.runningByFunction.get(def.name) ?? 0;
      // a function switched off (0) still gets one try, which is throttled and backs off
      if (active >= Math.max(1, this.runner.concurrencyLimit(def))) {
        saturated.push(def.name);
        continue;
      }
      this.ws.db.prepare(`UPDATE function_events SET status = 'running', attempts = attempts + 1 WHERE seq = ?`).run(row.seq);
      this.runningByFunction.set(def.name, active + 1);
      this.runningBytes += row.bytes;
      // a result that could not be recorded (database busy) leaves the event running: the next start runs it again
      const done = this.run({ ...row, attempts: row.attempts + 1 }, def).catch(() => undefined).finally(() => {
        this.running.delete(row.seq);
        this.runningBytes -= row.bytes;
        this.runningByFunction.set(def.name, (this.runningByFunction.get(def.name) ?? 1) - 1);
        this.pump();
      });
      this.running.set(row.seq, done);
    }
  }

  private async run(row: Row, def: FunctionDefinition): Promise<void> {
    let outcome: { error: unknown } | undefined;
    try {
      await this.runner.run(def.name, this.readEvent(row.seq), row.request_id);
    } catch (error) {
      outcome = { error };
    }
    if (this.stopped) return;
    if (!outcome) {
      this.ws.db.prepare('DELETE FROM function_events WHERE seq = ?').run(row.seq);
      return;
    }
    const e = outcome.error;
    const message = e instanceof Error ? e.message : String(e);
    // as on Lambda: throttles and system errors are retried until the event is too old, not counted as runs
    if (e instanceof ThrottledError || (e instanceof KennelError && (e.status === 500 || e.status === 503))) {
      const throttles = row.throttles + 1;
      this.ws.db.prepare(`UPDATE function_events SET attempts = attempts - 1, throttles = ? WHERE seq = ?`).run(throttles, row.seq);
      this.retry({ ...row, attempts: row.attempts - 1 }, def, message, Math.min(this.opts.throttleDelayMs * 2 ** (throttles - 1), this.opts.maxThrottleDelayMs), 'throttle');
    } else {
      this.afterFailure(row, def, message, this.opts.retryDelayMs * 2 ** (row.attempts - 1));
    }
  }

  /** The stored event, parsed; its bytes and text are garbage once this returns, while it runs. */
  private readEvent(seq: number): unknown {
    const { payload } = this.ws.db.prepare('SELECT payload FROM function_event_payloads WHERE seq = ?').get(seq) as { payload: Buffer };
    return JSON.parse(payload.toString('utf8'));
  }

  /** After a run that failed (or was cut short by a crash): retry, or the failure list once it ran 1 + maxRetries times. */
  private afterFailure(row: Row, def: FunctionDefinition | undefined, message: string, delayMs: number): void {
    if (!def) this.fail(row, 'deleted', 'The function was deleted.');
    else if (row.attempts > def.maxRetries) this.fail(row, 'retries', `${message} (run ${row.attempts} time${row.attempts === 1 ? '' : 's'})`);
    else this.retry(row, def, message, delayMs, 'error');
  }

  private retry(row: Row, def: FunctionDefinition, message: string, delayMs: number, reason: 'error' | 'throttle'): void {
    const next = Date.now() + delayMs;
    const maxAgeMs = def.maxEventAgeSeconds * 1000;
    if (next - row.received_at > maxAgeMs) {
      this.fail(row, 'age', `Its next try would be past its maximum event age (${duration(maxAgeMs)}). Last error: ${message}`);
      return;
    }
    this.ws.db.prepare(`UPDATE function_events SET status = 'queued', next_attempt_at = ?, last_error = ? WHERE seq = ?`).run(next, message, row.seq);
    this.metrics.eventsRetried.inc({ function: def.name, reason });
  }

  private fail(row: Row, reason: 'retries' | 'age' | 'deleted', message: string): void {
    this.ws.db.prepare(`UPDATE function_events SET status = 'failed', failed_at = ?, last_error = ? WHERE seq = ?`).run(Date.now(), message.slice(0, 2000), row.seq);
    this.metrics.eventsFailed.inc({ function: row.function, reason });
  }
}
