import { errorMessage } from '../core/errors.js';

/** One point of an endpoint's traffic chart: rates over the interval that ends at `t`. */
export interface TrafficPoint {
  /** ms since epoch */
  t: number;
  /** answered invocations per second (any status) */
  rps: number;
  /** latency quantiles in ms over the interval; null without traffic */
  p50: number | null;
  p99: number | null;
  /** invocations answered with an error (4xx/5xx) per second */
  errorsPerS: number;
}

interface Totals {
  count: number;
  errors: number;
  /** cumulative histogram: upper bound (seconds) -> observations at or below it */
  buckets: Map<number, number>;
}

const LINE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)$/;
const LABEL = /(\w+)="((?:[^"\\]|\\.)*)"/g;
const DURATION = 'kennel_invocation_duration_seconds';
const ERRORS = 'kennel_invocation_errors_total';

/** Per-endpoint totals from the daemon's Prometheus text (every variant and status summed). */
export function parseTotals(text: string): Map<string, Totals> {
  const out = new Map<string, Totals>();
  const of = (endpoint: string) => {
    let t = out.get(endpoint);
    if (!t) out.set(endpoint, (t = { count: 0, errors: 0, buckets: new Map() }));
    return t;
  };
  for (const line of text.split('\n')) {
    if (!line.startsWith('kennel_invocation_')) continue;
    const m = LINE.exec(line);
    if (!m) continue;
    const labels = Object.fromEntries([...(m[2] ?? '').matchAll(LABEL)].map((l) => [l[1]!, l[2]!]));
    const value = Number(m[3]);
    if (!labels.endpoint || !Number.isFinite(value)) continue;
    const t = of(labels.endpoint);
    if (m[1] === `${DURATION}_count`) t.count += value;
    else if (m[1] === ERRORS) t.errors += value;
    else if (m[1] === `${DURATION}_bucket` && labels.le !== undefined) {
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
  };
}

export interface TrafficOptions {
  /** the Prometheus text of the daemon's metrics */
  scrape: () => Promise<string>;
  /** endpoints that exist (those without traffic yet get zero points) */
  endpoints: () => string[];
  intervalMs?: number;
  /** points kept per endpoint */
  keep?: number;
  /** stop sampling this long after the last reader asked (no one is watching) */
  idleMs?: number;
}

/**
 * Throughput, latency quantiles and error rates per endpoint, from the daemon's own Prometheus
 * histograms (the same numbers a scraper sees), sampled while someone watches an endpoint page.
 */
export class TrafficSampler {
  private readonly series = new Map<string, TrafficPoint[]>();
  private previous?: { t: number; totals: Map<string, Totals> };
  private timer?: NodeJS.Timeout;
  private lastRead = 0;
  private lastError?: string;
  private readonly intervalMs: number;
  private readonly keep: number;
  private readonly idleMs: number;

  constructor(private readonly opts: TrafficOptions) {
    this.intervalMs = opts.intervalMs ?? 2000;
    this.keep = opts.keep ?? 150;
    this.idleMs = opts.idleMs ?? 300_000;
  }

  /** The endpoint's recent points (and starts sampling if it was idle). */
  read(endpoint: string): { points: TrafficPoint[]; error?: string } {
    this.lastRead = Date.now();
    if (!this.timer) {
      this.timer = setInterval(() => void this.sample(), this.intervalMs);
      void this.sample();
    }
    return { points: this.series.get(endpoint) ?? [], ...(this.lastError ? { error: this.lastError } : {}) };
  }

  close(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  private async sample(): Promise<void> {
    if (Date.now() - this.lastRead > this.idleMs) {
      this.close();
      this.previous = undefined; // a gap: the next sample starts a new baseline
      return;
    }
    let totals: Map<string, Totals>;
    try {
      totals = parseTotals(await this.opts.scrape());
      this.lastError = undefined;
    } catch (e) {
      this.lastError = `Could not read the daemon's metrics: ${errorMessage(e)}`;
      return;
    }
    const t = Date.now();
    if (this.previous) {
      const seconds = (t - this.previous.t) / 1000;
      const zero: Totals = { count: 0, errors: 0, buckets: new Map() };
      for (const endpoint of new Set([...totals.keys(), ...this.opts.endpoints()])) {
        const now = totals.get(endpoint) ?? zero;
        const points = this.series.get(endpoint) ?? [];
        points.push(point(t, seconds, now, this.previous.totals.get(endpoint)));
        if (points.length > this.keep) points.splice(0, points.length - this.keep);
        this.series.set(endpoint, points);
      }
    }
    this.previous = { t, totals };
  }
}
