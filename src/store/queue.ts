import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { Errors } from '../core/index.js';
import type { Workspace } from './workspace.js';

/**
 * A durable, bounded work queue in the workspace's SQLite database, for work accepted with a 202
 * and run in the background: functions' asynchronous (Event) invocations and endpoints'
 * asynchronous inference requests. Each queue has its own tables (items and payloads, created by
 * a migration) with the same columns; an item belongs to an owner (a function, an endpoint).
 *
 * An item is stored before it is acknowledged, or refused (the caller answers 429) when the
 * queue is full: failed items count against the bounds until they are replayed or purged, so a
 * full queue never makes room by forgetting one. Items run oldest due first, within each owner's
 * concurrency and the queue's bounds on items and payload bytes running at once (payloads are
 * read from the database only when they run). A failed run is retried with exponential backoff up
 * to the owner's retries; throttled tries (concurrency limit, overload) are retried until the
 * item is older than the owner's maximum age; then it goes to the failure list. An item running
 * when the process died is run again after the restart (at least once).
 */

export interface QueueTables {
  /** items: seq, id, OWNER, request_id, status, bytes, attempts, throttles, received_at, next_attempt_at, last_error, failed_at (+ completed_at, output for queues that keep results) */
  items: string;
  /** seq -> payload BLOB */
  payloads: string;
  /** the owner column's name: function, endpoint */
  owner: string;
  /** what an item is called in messages: event, request */
  noun: string;
  /** a column with an item's own maximum age in ms (null: none), for the policy's maxAgeMs to read as row.max_age_ms */
  maxAge?: string;
}

/** Bounds and timings of a queue. */
export interface QueueOptions {
  /** stored items (waiting, running or failed) per owner before 429 */
  maxItemsPerOwner: number;
  /** stored items of all owners before 429 */
  maxItems: number;
  /** stored payload bytes of all owners before 429 */
  maxBytes: number;
  /** items running at once, over all owners (each owner also keeps to its own concurrency) */
  concurrency: number;
  /** payload bytes of the items running at once (one item runs whatever its size) */
  maxRunningBytes: number;
  /** wait before the first retry of a failed run, doubling after */
  retryDelayMs: number;
  /** wait after the first throttled try, doubling up to maxThrottleDelayMs */
  throttleDelayMs: number;
  maxThrottleDelayMs: number;
  /** how often due retries and replays from the CLI are looked for */
  pollMs: number;
  /** at close, how long running items may finish before they are handed back to the queue */
  closeGraceMs: number;
}

/** A stored item, as the queue reads it. */
export interface QueueRow {
  seq: number;
  id: string;
  owner: string;
  request_id: string;
  bytes: number;
  attempts: number;
  throttles: number;
  received_at: number;
  last_error: string | null;
  failed_at: number | null;
  /** the item's own maximum age (QueueTables.maxAge), else null */
  max_age_ms: number | null;
}

/** An item of the failure list. */
export interface FailedItem {
  id: string;
  requestId: string;
  status: 'failed';
  receivedAt: string;
  failedAt: string;
  attempts: number;
  lastError: string;
  bytes: number;
}

export interface ItemCounts {
  /** waiting for their (next) run */
  queued: number;
  running: number;
  failed: number;
}

const columns = (t: QueueTables) => `seq, id, ${t.owner} AS owner, request_id, bytes, attempts, throttles, received_at, last_error, failed_at, ${t.maxAge ?? 'NULL'} AS max_age_ms`;

/** Items that count against the bounds: all but completed ones (kept a while for their status and result). */
const STORED = "status IN ('queued', 'running', 'failed')";

/**
 * Stores an item before it is acknowledged; `full` builds the error (a 429) when the queue is
 * full. `id` defaults to a random UUID; `extra` sets more columns of the row.
 */
export function enqueueItem(
  ws: Workspace,
  t: QueueTables,
  owner: string,
  payload: Uint8Array,
  requestId: string,
  o: Pick<QueueOptions, 'maxItemsPerOwner' | 'maxItems' | 'maxBytes'> & { full: (message: string) => Error; id?: string; extra?: Record<string, string | number | null> },
): string {
  return ws.db.transaction(() => {
    const mine = (ws.db.prepare(`SELECT count(*) AS n FROM ${t.items} WHERE ${t.owner} = ? AND ${STORED}`).get(owner) as { n: number }).n;
    const all = ws.db.prepare(`SELECT count(*) AS n, coalesce(sum(bytes), 0) AS bytes FROM ${t.items} WHERE ${STORED}`).get() as { n: number; bytes: number };
    if (mine >= o.maxItemsPerOwner) throw o.full(`The asynchronous queue of ${t.owner} ${owner} is full (${mine} ${t.noun}s waiting, running or failed).`);
    if (all.n >= o.maxItems || all.bytes + payload.length > o.maxBytes) throw o.full(`The asynchronous queue is full (${all.n} ${t.noun}s, ${Math.round(all.bytes / 1024 ** 2)} MiB, of all ${t.owner}s).`);
    const id = o.id ?? randomUUID();
    const now = Date.now();
    const extra = Object.entries(o.extra ?? {});
    const { lastInsertRowid } = ws.db
      .prepare(`INSERT INTO ${t.items} (id, ${t.owner}, request_id, status, bytes, received_at, next_attempt_at${extra.map(([k]) => `, ${k}`).join('')}) VALUES (?, ?, ?, 'queued', ?, ?, ?${extra.map(() => ', ?').join('')})`)
      .run(id, owner, requestId, payload.length, now, now, ...extra.map(([, v]) => v));
    ws.db.prepare(`INSERT INTO ${t.payloads} (seq, payload) VALUES (?, ?)`).run(lastInsertRowid, payload);
    return id;
  })();
}

export function listFailedItems(ws: Workspace, t: QueueTables, owner: string): FailedItem[] {
  const rows = ws.db.prepare(`SELECT ${columns(t)} FROM ${t.items} WHERE ${t.owner} = ? AND status = 'failed' ORDER BY seq`).all(owner) as QueueRow[];
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

export function itemCounts(ws: Workspace, t: QueueTables, owner: string): ItemCounts {
  const counts: ItemCounts = { queued: 0, running: 0, failed: 0 };
  for (const r of ws.db.prepare(`SELECT status, count(*) AS n FROM ${t.items} WHERE ${t.owner} = ? AND ${STORED} GROUP BY status`).all(owner) as Array<{ status: keyof ItemCounts; n: number }>) counts[r.status] = r.n;
  return counts;
}

/** The failed items named (all of the owner's when none are), as `WHERE` terms. */
function failedOf(t: QueueTables, owner: string, ids: string[] | undefined): { where: string; params: unknown[] } {
  return ids?.length
    ? { where: `${t.owner} = ? AND status = 'failed' AND id IN (SELECT value FROM json_each(?))`, params: [owner, JSON.stringify(ids)] }
    : { where: `${t.owner} = ? AND status = 'failed'`, params: [owner] };
}

function checkIds(ws: Workspace, t: QueueTables, owner: string, ids: string[] | undefined, hint: string): void {
  if (!ids?.length) return;
  const known = new Set(listFailedItems(ws, t, owner).map((e) => e.id));
  const unknown = ids.filter((id) => !known.has(id));
  if (unknown.length) throw Errors.NotFound(`${t.owner[0]!.toUpperCase()}${t.owner.slice(1)} ${owner} has no failed ${t.noun} ${unknown[0]}.`, hint);
}

/** Queues failed items again as new ones: attempts and age start over. A running queue picks them up within its poll interval. */
export function replayItems(ws: Workspace, t: QueueTables, owner: string, ids: string[] | undefined, hint: string): number {
  return ws.db.transaction(() => {
    checkIds(ws, t, owner, ids, hint);
    const { where, params } = failedOf(t, owner, ids);
    const now = Date.now();
    return ws.db.prepare(`UPDATE ${t.items} SET status = 'queued', attempts = 0, throttles = 0, received_at = ?, next_attempt_at = ?, last_error = NULL, failed_at = NULL WHERE ${where}`).run(now, now, ...params).changes;
  })();
}

/** Deletes failed items (their payloads go with them). */
export function purgeItems(ws: Workspace, t: QueueTables, owner: string, ids: string[] | undefined, hint: string): number {
  return ws.db.transaction(() => {
    checkIds(ws, t, owner, ids, hint);
    const { where, params } = failedOf(t, owner, ids);
    return ws.db.prepare(`DELETE FROM ${t.items} WHERE ${where}`).run(...params).changes;
  })();
}

/** What a queue needs of its owners (functions, endpoints): their limits, how to run an item, what to do with results. */
export interface QueuePolicy<D> {
  /** the owner's definition, undefined once it is deleted (its items then fail) */
  find(owner: string): D | undefined;
  name(def: D): string;
  /** runs after the first (a failure list once it ran 1 + maxRetries times) */
  maxRetries(def: D): number;
  /** an item older than this (since it was received or replayed) is not run again; the row carries its own limit when the queue has one (max_age_ms) */
  maxAgeMs(def: D, row: QueueRow): number;
  /** items of this owner running at once */
  concurrency(def: D): number;
  run(def: D, payload: Buffer, row: QueueRow): Promise<unknown>;
  /** a failure retried until the item is too old, not counted as a run (throttled, overloaded) */
  isThrottle(e: unknown): boolean;
  /** a failure no retry can change (a bad input): straight to the failure list */
  isPermanent?(e: unknown): boolean;
  /** the run succeeded: record its result (default: the item is deleted) */
  succeeded?(row: QueueRow, result: unknown): void;
  /** the item went to the failure list */
  failed?(row: QueueRow, reason: 'retries' | 'age' | 'deleted' | 'invalid', message: string): void;
  retried?(owner: string, reason: 'error' | 'throttle'): void;
}

/** 6h, 1m, 90s: a maximum age in messages. */
export const shortDuration = (ms: number) => (ms % 3_600_000 === 0 ? `${ms / 3_600_000}h` : ms % 60_000 === 0 ? `${ms / 60_000}m` : `${ms / 1000}s`);

/** Runs a queue's stored items in the background (see the top of this file). */
export class DurableQueue<D> {
  /** running items: seq -> its run */
  private readonly running = new Map<number, Promise<void>>();
  private readonly runningByOwner = new Map<string, number>();
  private runningBytes = 0;
  private timer?: NodeJS.Timeout;
  private wakeScheduled = false;
  private closing = false;
  /** after close: late results of handed-back runs must not touch the database */
  private stopped = false;

  constructor(
    private readonly ws: Workspace,
    readonly tables: QueueTables,
    private readonly policy: QueuePolicy<D>,
    readonly opts: QueueOptions,
  ) {}

  /** Stores an item (`full` builds the 429) and wakes the drainer; the caller answers 202 after this. */
  enqueue(owner: string, payload: Uint8Array, requestId: string, o: { full: (message: string) => Error; id?: string; extra?: Record<string, string | number | null> }): string {
    const id = enqueueItem(this.ws, this.tables, owner, payload, requestId, { ...this.opts, ...o });
    this.wake();
    return id;
  }

  /** Items being run by this process now, per owner (the rest of the backlog is in the table). */
  runningCount(owner: string): number {
    return this.runningByOwner.get(owner) ?? 0;
  }

  /** Hands back items that were running when the process last died, then drains. */
  start(): void {
    const interrupted = this.ws.db.prepare(`SELECT ${columns(this.tables)} FROM ${this.tables.items} WHERE status = 'running'`).all() as QueueRow[];
    for (const row of interrupted) this.afterFailure(row, this.policy.find(row.owner), `The daemon stopped while the ${this.tables.noun} ran.`, 0);
    this.timer ??= setInterval(() => this.pump(), this.opts.pollMs);
    this.timer.unref();
    this.pump();
  }

  /** Stops taking items; runs still going after the grace period are handed back to the queue. */
  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    if (this.timer) clearInterval(this.timer);
    const grace = new AbortController();
    await Promise.race([Promise.allSettled(this.running.values()), sleep(this.opts.closeGraceMs, undefined, { signal: grace.signal }).catch(() => undefined)]);
    grace.abort();
    this.stopped = true;
    for (const seq of this.running.keys()) {
      this.ws.db.prepare(`UPDATE ${this.tables.items} SET status = 'queued', attempts = attempts - 1, next_attempt_at = ? WHERE seq = ? AND status = 'running'`).run(Date.now(), seq);
    }
  }

  /** Looks for due items now (after enqueueing, or when an owner has room again). */
  wake(): void {
    if (this.wakeScheduled || !this.timer) return;
    this.wakeScheduled = true;
    setImmediate(() => {
      this.wakeScheduled = false;
      this.pump();
    });
  }

  /** Starts due items while there is room. */
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
    const t = this.tables;
    // owners at their own concurrency are skipped, so their backlog never blocks others
    const saturated: string[] = [];
    while (this.running.size < this.opts.concurrency && (this.running.size === 0 || this.runningBytes < this.opts.maxRunningBytes)) {
      const row = this.ws.db
        .prepare(`SELECT ${columns(t)} FROM ${t.items} WHERE status = 'queued' AND next_attempt_at <= ? AND ${t.owner} NOT IN (SELECT value FROM json_each(?)) ORDER BY next_attempt_at, seq LIMIT 1`)
        .get(now, JSON.stringify(saturated)) as QueueRow | undefined;
      if (!row) return;
      if (this.running.size > 0 && this.runningBytes + row.bytes > this.opts.maxRunningBytes) return;
      const def = this.policy.find(row.owner);
      if (!def) {
        this.fail(row, 'deleted', `The ${t.owner} was deleted.`);
        continue;
      }
      const maxAgeMs = this.policy.maxAgeMs(def, row);
      if (now - row.received_at > maxAgeMs) {
        this.fail(row, 'age', `It was not run within its maximum ${t.noun} age (${shortDuration(maxAgeMs)}).${row.last_error ? ` Last error: ${row.last_error}` : ''}`);
        continue;
      }
      const owner = this.policy.name(def);
      const active = this.runningByOwner.get(owner) ?? 0;
      // an owner switched off (0) still gets one try, which is throttled and backs off
      if (active >= Math.max(1, this.policy.concurrency(def))) {
        saturated.push(owner);
        continue;
      }
      this.ws.db.prepare(`UPDATE ${t.items} SET status = 'running', attempts = attempts + 1 WHERE seq = ?`).run(row.seq);
      this.runningByOwner.set(owner, active + 1);
      this.runningBytes += row.bytes;
      // a result that could not be recorded (database busy) leaves the item running: the next start runs it again
      const done = this.run({ ...row, attempts: row.attempts + 1 }, def)
        .catch(() => undefined)
        .finally(() => {
          this.running.delete(row.seq);
          this.runningBytes -= row.bytes;
          this.runningByOwner.set(owner, (this.runningByOwner.get(owner) ?? 1) - 1);
          this.pump();
        });
      this.running.set(row.seq, done);
    }
  }

  private async run(row: QueueRow, def: D): Promise<void> {
    let outcome: { result: unknown } | { error: unknown };
    try {
      outcome = { result: await this.policy.run(def, this.readPayload(row.seq), row) };
    } catch (error) {
      outcome = { error };
    }
    if (this.stopped) return;
    if ('result' in outcome) {
      if (this.policy.succeeded) this.policy.succeeded(row, outcome.result);
      else this.ws.db.prepare(`DELETE FROM ${this.tables.items} WHERE seq = ?`).run(row.seq);
      return;
    }
    const e = outcome.error;
    const message = e instanceof Error ? e.message : String(e);
    if (this.policy.isPermanent?.(e)) {
      this.fail(row, 'invalid', message);
    } else if (this.policy.isThrottle(e)) {
      const throttles = row.throttles + 1;
      this.ws.db.prepare(`UPDATE ${this.tables.items} SET attempts = attempts - 1, throttles = ? WHERE seq = ?`).run(throttles, row.seq);
      this.retry({ ...row, attempts: row.attempts - 1 }, def, message, Math.min(this.opts.throttleDelayMs * 2 ** (throttles - 1), this.opts.maxThrottleDelayMs), 'throttle');
    } else {
      this.afterFailure(row, def, message, this.opts.retryDelayMs * 2 ** (row.attempts - 1));
    }
  }

  private readPayload(seq: number): Buffer {
    return (this.ws.db.prepare(`SELECT payload FROM ${this.tables.payloads} WHERE seq = ?`).get(seq) as { payload: Buffer }).payload;
  }

  /** After a run that failed (or was cut short by a crash): retry, or the failure list once it ran 1 + maxRetries times. */
  private afterFailure(row: QueueRow, def: D | undefined, message: string, delayMs: number): void {
    if (!def) this.fail(row, 'deleted', `The ${this.tables.owner} was deleted.`);
    else if (row.attempts > this.policy.maxRetries(def)) this.fail(row, 'retries', `${message} (run ${row.attempts} time${row.attempts === 1 ? '' : 's'})`);
    else this.retry(row, def, message, delayMs, 'error');
  }

  private retry(row: QueueRow, def: D, message: string, delayMs: number, reason: 'error' | 'throttle'): void {
    const next = Date.now() + delayMs;
    const maxAgeMs = this.policy.maxAgeMs(def, row);
    if (next - row.received_at > maxAgeMs) {
      this.fail(row, 'age', `Its next try would be past its maximum ${this.tables.noun} age (${shortDuration(maxAgeMs)}). Last error: ${message}`);
      return;
    }
    this.ws.db.prepare(`UPDATE ${this.tables.items} SET status = 'queued', next_attempt_at = ?, last_error = ? WHERE seq = ?`).run(next, message, row.seq);
    this.policy.retried?.(row.owner, reason);
  }

  private fail(row: QueueRow, reason: 'retries' | 'age' | 'deleted' | 'invalid', message: string): void {
    const text = message.slice(0, 2000);
    this.ws.db.prepare(`UPDATE ${this.tables.items} SET status = 'failed', failed_at = ?, last_error = ? WHERE seq = ?`).run(Date.now(), text, row.seq);
    this.policy.failed?.(row, reason, text);
  }
}
