import { errorMessage } from '../core/index.js';
import type { Traffic, TrafficPoint } from './api-types.js';

interface Totals {
  count: number;
  /** errors other than 429 */
  errors: number;
  /** 429 answers: throttled, rate-limited or a full queue */
  throttled: number;
  /** cumulative histogram: upper bound (seconds) -> observations at or below it */
  buckets: Map<number, number>;
}

const DURATION = 'kennel_invocation_duration_seconds';
const ERRORS = 'kennel_invocation_errors_total';

/** One sample of the daemon's invocation metrics, as prom-client gives them in process (`metric.get()`). */
export interface MetricSample {
  metricName: string;
  labels: Partial<Record<string, string | number>>;
  value: number;
}

/** Per-endpoint totals from the daemon's invocation metrics (every variant and status summed). */
export function totalsOf(samples: readonly MetricSample[]): Map<string, Totals> {
  const out = new Map<string, Totals>();
  const of = (endpoint: string) => {
    let t = out.get(endpoint);
    if (!t) out.set(endpoint, (t = { count: 0, errors: 0, throttled: 0, buckets: new Map() }));
    return t;
  };
  for (const { metricName, labels, value } of samples) {
    if (typeof labels.endpoint !== 'string' || !labels.endpoint || !Number.isFinite(value)) continue;
    const t = of(labels.endpoint);
    if (metricName === `${DURATION}_count`) t.count += value;
    else if (metricName === ERRORS && String(labels.status) === '429') t.throttled += value;
    else if (metricName === ERRORS) t.errors += value;
    else if (metricName === `${DURATION}_bucket` && labels.le !== undefined) {
      const le = labels.le === '+Inf' ? Infinity : Number(labels.le);
      t.buckets.set(le, (t.buckets.get(le) ?? 0) + value);
    }
  }
  return out;
}

/** Prometheus' histogram_quantile: linear interpolation inside the bucket that holds the quantile. */
export function quantile(q: number, buckets: Array<[number, number]>): number | null {
  const sorted = [...buckets].sort((a, b) => a[0] - b[0]);
  const total = sorted.at(-1)?.[1] ?? 0;
  if (total <= 0) return null;
  const rank = q * total;
  let prevLe = 0;
  let prevCount = 0;
  for (const [le, count] of sorted) {
    if (count >= rank) {
      // the open-ended bucket has no upper bound: report its lower one
      if (le === Infinity) return prevLe;
      return prevLe + ((le - prevLe) * (rank - prevCount)) / Math.max(count - prevCount, 1e-12);
    }
    prevLe = le;
    prevCount = count;
  }
  return prevLe;
}

function point(t: number, seconds: number, now: Totals, before: Totals | undefined): TrafficPoint {
  const delta = (a: number, b = 0) => Math.max(0, a - b);
  const buckets = [...now.buckets].map(([le, c]): [number, number] => [le, delta(c, before?.buckets.get(le))]);
  const ms = (x: number | null) => (x === null ? null : Math.round(x * 1e4) / 10);
  return {
    t,
    rps: delta(now.count, before?.count) / seconds,
    p50: ms(quantile(0.5, buckets)),
    p99: ms(quantile(0.99, buckets)),
    errorsPerS: delta(now.errors, before?.errors) / seconds,
    throttledPerS: delta(now.throttled, before?.throttled) / seconds,
  };
}

export interface TrafficOptions {
  /** the daemon's invocation metrics, read in process (ServingMetrics.invocationSamples) */
  scrape: () => Promise<MetricSample[]>;
  /** endpoints that exist (those without traffic yet get zero points) */
  endpoints: () => string[];
  /** live points while someone watches, default 2 s */
  intervalMs?: number;
  /** history points, watched or not, default 30 s */
  historyIntervalMs?: number;
  /** how far back the live points go, default 5 minutes */
  liveMs?: number;
  /** how far back the history goes, default an hour */
  historyMs?: number;
  /** live sampling stops this long after the last reader asked (no one is watching), default 10 s */
  idleMs?: number;
  /** the clock, ms since epoch (tests drive it) */
  now?: () => number;
}

type Snapshot = { t: number; totals: Map<string, Totals> };

const ZERO: Totals = { count: 0, errors: 0, throttled: 0, buckets: new Map() };

/** Rates between two snapshots for every endpoint that exists, appended to its series and trimmed by age. */
function extend(series: Map<string, TrafficPoint[]>, names: string[], now: Snapshot, before: Snapshot | undefined, keepMs: number): void {
  for (const name of [...series.keys()]) if (!names.includes(name)) series.delete(name);
  for (const name of names) {
    const points = series.get(name) ?? [];
    if (before) points.push(point(now.t, (now.t - before.t) / 1000, now.totals.get(name) ?? ZERO, before.totals.get(name)));
    const first = points.findIndex((p) => p.t >= now.t - keepMs);
    points.splice(0, first < 0 ? points.length : first);
    series.set(name, points);
  }
}

/**
 * Throughput, latency quantiles, error and throttle rates per endpoint, from the daemon's own
 * Prometheus histograms read in process (the same numbers a scraper sees): a point every 2 s for the last 5
 * minutes while someone watches, and a point every 30 s for the last hour all the time. Memory is
 * bounded by age: 150 + 120 points per endpoint.
 */
export class TrafficSampler {
  private readonly live = new Map<string, TrafficPoint[]>();
  private readonly history = new Map<string, TrafficPoint[]>();
  private previous?: Snapshot;
  private previousHistory?: Snapshot;
  private readonly timer: NodeJS.Timeout;
  private lastRead = -Infinity;
  private lastError?: string;
  private busy = false;
  private readonly o: Required<Omit<TrafficOptions, 'scrape' | 'endpoints'>>;

  constructor(private readonly opts: TrafficOptions) {
    this.o = { intervalMs: opts.intervalMs ?? 2000, historyIntervalMs: opts.historyIntervalMs ?? 30_000, liveMs: opts.liveMs ?? 300_000, historyMs: opts.historyMs ?? 3_600_000, idleMs: opts.idleMs ?? 10_000, now: opts.now ?? Date.now };
    this.timer = setInterval(() => void this.sample(), this.o.intervalMs);
    this.timer.unref();
    void this.sample();
  }

  /** The endpoint's recent points and its hour of history (and samples live from now on). */
  read(endpoint: string): Traffic {
    this.lastRead = this.o.now();
    // live points stop being trimmed while nobody watches: an old one is not live
    const live = (this.live.get(endpoint) ?? []).filter((p) => p.t >= this.lastRead - this.o.liveMs);
    return { points: live, history: this.history.get(endpoint) ?? [], ...(this.lastError ? { error: this.lastError } : {}) };
  }

  close(): void {
    clearInterval(this.timer);
  }

  /** One tick of the timer (public so tests can drive it with their own clock). */
  async sample(): Promise<void> {
    const now = this.o.now();
    const watched = now - this.lastRead <= this.o.idleMs;
    // a history point is due half a live interval early, so timer jitter never skips one
    const historyDue = !this.previousHistory || now - this.previousHistory.t >= this.o.historyIntervalMs - this.o.intervalMs / 2;
    if (!watched) this.previous = undefined; // a gap: live points start from a new baseline
    if (this.busy || (!watched && !historyDue)) return;
    this.busy = true;
    try {
      const snap: Snapshot = { t: now, totals: totalsOf(await this.opts.scrape()) };
      this.lastError = undefined;
      const names = this.opts.endpoints();
      if (watched) {
        extend(this.live, names, snap, this.previous, this.o.liveMs);
        this.previous = snap;
      }
      if (historyDue) {
        extend(this.history, names, snap, this.previousHistory, this.o.historyMs);
        this.previousHistory = snap;
      }
    } catch (e) {
      this.lastError = `Could not read the daemon's metrics: ${errorMessage(e)}`;
    } finally {
      this.busy = false;
    }
  }
}
