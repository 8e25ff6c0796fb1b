import { KennelError, errorMessage } from '../core/index.js';
import type { Prediction } from '../inference/index.js';
import { keepNewestRows, now, type Workspace } from '../store/index.js';
import type { Shadow } from './endpoints.js';
import type { ReplicaPool } from './supervisor.js';

/** Compared requests kept per endpoint (the newest); the report covers these. */
export const SHADOW_ROWS_KEPT = 20_000;

/** How the primary answered a mirrored request. */
export interface PrimaryOutcome {
  model: string;
  predictions?: Prediction[];
  /** error code when it failed */
  error?: string;
  ms: number;
}

interface ResultRow {
  endpoint: string;
  shadow_model: string;
  primary_model: string;
  at: number;
  primary_label: string | null;
  primary_score: number | null;
  primary_ms: number;
  primary_error: string | null;
  shadow_label: string | null;
  shadow_score: number | null;
  shadow_ms: number;
  shadow_error: string | null;
}

const codeOf = (e: unknown): string => (e instanceof KennelError ? e.code : errorMessage(e).slice(0, 200));

/**
 * A shadow variant's traffic: a share of requests is copied to the shadow's replicas once the
 * primary has answered (the router calls `mirror` on a later event-loop turn, after the answer
 * was written). The shadow never makes the primary wait and only takes CPU the primary leaves: a
 * request is dropped and counted when the primary is busy (more requests in it than ready
 * replicas) or the shadow's replicas cannot take it at once (each holds at most `perReplica`
 * mirrored requests); the shadow's replicas run at the lowest CPU priority, and the router holds
 * them (stopped) while any request is in flight. Drops depend on load, not on the image, so the
 * comparison stays unbiased. Both answers of each mirrored request are buffered and written to
 * `shadow_results` once a second, in one transaction.
 */
export class ShadowMirror {
  private rows: ResultRow[] = [];
  private mirrored = 0;
  private dropped = 0;
  private readonly timer: NodeJS.Timeout;
  private closed = false;

  constructor(
    private readonly ws: Workspace,
    readonly endpoint: string,
    readonly shadow: Shadow,
    readonly pool: ReplicaPool,
    private readonly perReplica: number,
    private readonly random: () => number = Math.random,
  ) {
    ws.db.prepare('INSERT OR IGNORE INTO shadow_counts (endpoint, shadow_model, since) VALUES (?, ?, ?)').run(endpoint, shadow.model, now());
    this.timer = setInterval(() => this.flush(), 1000);
    this.timer.unref();
  }

  /** Whether this request is one of the mirrored share. */
  sample(): boolean {
    return this.shadow.percent >= 100 || this.random() * 100 < this.shadow.percent;
  }

  /**
   * Sends a copy of a request the primary answered to a shadow replica, or drops it: when the
   * primary is busy (more requests in it than it has ready replicas: the CPU is the primary's)
   * or no shadow replica can take it now.
   */
  mirror(image: Uint8Array, requestId: string, primary: PrimaryOutcome, primaryPool?: ReplicaPool): void {
    if (this.closed) return;
    const replica = primaryPool && primaryPool.inFlight > primaryPool.readyCount ? undefined : this.pool.tryAcquire(this.perReplica);
    if (!replica) {
      this.dropped++;
      return;
    }
    this.mirrored++;
    const t0 = performance.now();
    this.pool.begin();
    const done = (predictions: Prediction[] | undefined, error: string | undefined): void => {
      this.pool.end();
      if (this.closed) return;
      const p = primary.predictions?.[0];
      const s = predictions?.[0];
      this.rows.push({
        endpoint: this.endpoint,
        shadow_model: this.shadow.model,
        primary_model: primary.model,
        at: Date.now(),
        primary_label: p?.label ?? null,
        primary_score: p?.score ?? null,
        primary_ms: primary.ms,
        primary_error: primary.error ?? null,
        shadow_label: s?.label ?? null,
        shadow_score: s?.score ?? null,
        shadow_ms: performance.now() - t0,
        shadow_error: error ?? null,
      });
    };
    replica.infer(image, 1, requestId).then(
      (a) => done(a.predictions, undefined),
      (e: unknown) => done(undefined, codeOf(e)),
    );
  }

  /** Writes the buffered results and counts; keeps the newest SHADOW_ROWS_KEPT rows of the endpoint. */
  flush(): void {
    const rows = this.rows;
    const mirrored = this.mirrored;
    const dropped = this.dropped;
    if (!rows.length && !mirrored && !dropped) return;
    this.rows = [];
    this.mirrored = 0;
    this.dropped = 0;
    const insert = this.ws.db.prepare(
      'INSERT INTO shadow_results (endpoint, shadow_model, primary_model, at, primary_label, primary_score, primary_ms, primary_error, shadow_label, shadow_score, shadow_ms, shadow_error) VALUES (@endpoint, @shadow_model, @primary_model, @at, @primary_label, @primary_score, @primary_ms, @primary_error, @shadow_label, @shadow_score, @shadow_ms, @shadow_error)',
    );
    this.ws.db.transaction(() => {
      for (const r of rows) insert.run(r);
      this.ws.db.prepare('UPDATE shadow_counts SET mirrored = mirrored + ?, dropped = dropped + ? WHERE endpoint = ? AND shadow_model = ?').run(mirrored, dropped, this.endpoint, this.shadow.model);
      if (rows.length) {
        keepNewestRows(this.ws.db, 'shadow_results', this.endpoint, SHADOW_ROWS_KEPT);
      }
    })();
  }

  /** Stops mirroring and writes what is buffered (answers still on their way are not waited for). */
  close(): void {
    if (this.closed) return;
    clearInterval(this.timer);
    try {
      this.flush();
    } finally {
      this.closed = true;
    }
  }
}

/** Forgets the comparisons of an endpoint's shadows other than `keep` (all of them without). */
export function clearShadowResults(ws: Workspace, endpoint: string, keep?: string): void {
  ws.db.transaction(() => {
    ws.db.prepare('DELETE FROM shadow_results WHERE endpoint = ? AND shadow_model IS NOT ?').run(endpoint, keep ?? null);
    ws.db.prepare('DELETE FROM shadow_counts WHERE endpoint = ? AND shadow_model IS NOT ?').run(endpoint, keep ?? null);
  })();
}

/** The endpoint's most recent shadow that has stored results, once it was stopped (its report stays readable). */
export function latestShadow(ws: Workspace, endpoint: string): Shadow | null {
  const r = ws.db.prepare('SELECT shadow_model FROM shadow_counts WHERE endpoint = ? ORDER BY since DESC LIMIT 1').get(endpoint) as { shadow_model: string } | undefined;
  return r ? { model: r.shadow_model, percent: 0, instances: 0 } : null;
}

export interface LatencySummary {
  /** answers of this model among the compared requests */
  answered: number;
  errors: number;
  /** error code -> count */
  errorCodes: Record<string, number>;
  p50Ms: number | null;
  p95Ms: number | null;
  p99Ms: number | null;
}

export interface ClassDisagreement {
  /** the primary's top-1 label */
  label: string;
  /** compared requests the primary gave this label */
  requests: number;
  disagreements: number;
  /** disagreements / requests */
  rate: number;
  /** what the shadow said instead, most frequent first (up to 3) */
  shadowSaid: Array<{ label: string; count: number }>;
}

export interface ShadowReport {
  endpoint: string;
  shadow: Shadow | null;
  /** the primary model(s) of the compared requests (one, unless the primary was updated meanwhile) */
  primaryModels: string[];
  /** compared requests: mirrored and answered (or failed) by both, within the kept window */
  requests: number;
  /** share of the requests both answered where both top-1 labels are the same; null before any */
  agreement: number | null;
  /** mirrored and dropped (the shadow was full) since the shadow started */
  mirrored: number;
  dropped: number;
  since: string | null;
  primary: LatencySummary;
  shadowLatency: LatencySummary;
  /** per primary top-1 label, most disagreements first (at most 50) */
  classes: ClassDisagreement[];
  /** the oldest and newest compared request */
  window: { from: string; to: string } | null;
}

/** The nearest-rank percentile of sorted values. */
function percentile(sorted: number[], q: number): number | null {
  if (!sorted.length) return null;
  return Math.round(sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]! * 100) / 100;
}

function latency(rows: ResultRow[], which: 'primary' | 'shadow'): LatencySummary {
  const ok = rows.filter((r) => r[`${which}_error`] === null);
  const ms = ok.map((r) => r[`${which}_ms`]).sort((a, b) => a - b);
  const errorCodes: Record<string, number> = {};
  for (const r of rows) {
    const e = r[`${which}_error`];
    if (e !== null) errorCodes[e] = (errorCodes[e] ?? 0) + 1;
  }
  return { answered: ok.length, errors: rows.length - ok.length, errorCodes, p50Ms: percentile(ms, 0.5), p95Ms: percentile(ms, 0.95), p99Ms: percentile(ms, 0.99) };
}

/** The comparison of an endpoint's current shadow with its primary, from the stored results. */
export function shadowReport(ws: Workspace, endpoint: string, shadow: Shadow | null): ShadowReport {
  const model = shadow?.model ?? null;
  const rows = (model ? ws.db.prepare('SELECT * FROM shadow_results WHERE endpoint = ? AND shadow_model = ? ORDER BY id').all(endpoint, model) : []) as ResultRow[];
  const counts = (model ? ws.db.prepare('SELECT mirrored, dropped, since FROM shadow_counts WHERE endpoint = ? AND shadow_model = ?').get(endpoint, model) : undefined) as { mirrored: number; dropped: number; since: string } | undefined;
  const both = rows.filter((r) => r.primary_label !== null && r.shadow_label !== null);
  const agreed = both.filter((r) => r.primary_label === r.shadow_label).length;
  const perClass = new Map<string, { requests: number; disagreements: number; said: Map<string, number> }>();
  for (const r of both) {
    const c = perClass.get(r.primary_label!) ?? { requests: 0, disagreements: 0, said: new Map<string, number>() };
    c.requests++;
    if (r.primary_label !== r.shadow_label) {
      c.disagreements++;
      c.said.set(r.shadow_label!, (c.said.get(r.shadow_label!) ?? 0) + 1);
    }
    perClass.set(r.primary_label!, c);
  }
  const classes = [...perClass.entries()]
    .map(([label, c]) => ({
      label,
      requests: c.requests,
      disagreements: c.disagreements,
      rate: c.disagreements / c.requests,
      shadowSaid: [...c.said.entries()].sort((a, b) => b[1] - a[1]).slice(0, 3).map(([l, count]) => ({ label: l, count })),
    }))
    .sort((a, b) => b.disagreements - a.disagreements || b.requests - a.requests || a.label.localeCompare(b.label))
    .slice(0, 50);
  return {
    endpoint,
    shadow,
    primaryModels: [...new Set(rows.map((r) => r.primary_model))],
    requests: rows.length,
    agreement: both.length ? agreed / both.length : null,
    mirrored: counts?.mirrored ?? 0,
    dropped: counts?.dropped ?? 0,
    since: counts?.since ?? null,
    primary: latency(rows, 'primary'),
    shadowLatency: latency(rows, 'shadow'),
    classes,
    window: rows.length ? { from: new Date(rows[0]!.at).toISOString(), to: new Date(rows.at(-1)!.at).toISOString() } : null,
  };
}
