/** Target-tracking policy of one endpoint (applied to each of its variants). */
export interface ScalingPolicy {
  min: number;
  max: number;
  /** in-flight requests per replica (a time-weighted mean over each second), or invocations per replica per minute (SageMaker's InvocationsPerInstance) */
  metric: 'concurrency' | 'invocations';
  target: number;
  /**
   * asynchronous requests stored per replica (queued or running; SageMaker's
   * ApproximateBacklogSizePerInstance): the replicas wanted are at least backlog / this, so a
   * queue deeper than the in-flight runs can show still adds capacity
   */
  backlogPerInstance: number;
  scaleOutCooldownS: number;
  scaleInCooldownS: number;
}

/** A variant's traffic over one sampling interval. */
export interface Sample {
  /** length of the interval */
  seconds: number;
  /** time-weighted mean of requests in the system (waiting or on a replica) */
  concurrency: number;
  invocations: number;
  /** requests in the system at the end of the interval */
  inSystem: number;
  /** the variant's share of its endpoint's asynchronous requests stored and not finished, at the end of the interval */
  backlog?: number;
}

export interface ScalingState {
  /** replicas wanted now (starting or serving) */
  current: number;
  /** newest last */
  history: Sample[];
  lastScaleOutAt: number;
  lastScaleInAt: number;
}

export interface ScalingDecision {
  desired: number;
  direction: 'out' | 'in';
  reason: string;
}

/**
 * Scaling out is fast: it follows in-flight requests over the last second (a time-weighted mean)
 * or invocations over the last 5 s, re-evaluated at every sample. Scaling in is slow: every
 * second of a longer window (the scale-in cooldown, 5 to 30 s) must be calm, so a short lull
 * does not remove capacity.
 */
const scaleOutWindow = (p: ScalingPolicy): number => (p.metric === 'concurrency' ? 1 : 5);
const scaleInWindow = (p: ScalingPolicy): number => Math.max(5, Math.min(30, Math.ceil(p.scaleInCooldownS)));
/**
 * Scaling in keeps the metric at most this fraction of the target on the replicas left, so a
 * metric hovering near the target does not remove a replica only to add it back a second later.
 */
const SCALE_IN_HEADROOM = 0.8;
/** Seconds of samples kept per variant: enough for the longest window. */
export const HISTORY_S = 60;

/** The newest samples covering `seconds` (or all there are), and the time they cover. */
function trailing(history: Sample[], seconds: number): { samples: Sample[]; covered: number } {
  let covered = 0;
  let i = history.length;
  while (i > 0 && covered < seconds - 1e-6) covered += history[--i]!.seconds;
  return { samples: history.slice(i), covered };
}

/**
 * Target tracking: the replicas needed to bring the metric per replica to the target,
 * ceil(total / target), or the asynchronous backlog per replica to its target,
 * ceil(backlog / backlogPerInstance), whichever is more, clamped to [min, max], with separate cooldowns for scaling out and in
 * (and some headroom when scaling in).
 * Returns undefined when nothing should change.
 */
export function decideScaling(p: ScalingPolicy, s: ScalingState, nowMs: number): ScalingDecision | undefined {
  if (s.history.length === 0) return undefined;
  const clamp = (n: number) => Math.min(p.max, Math.max(p.min, n));
  const out = trailing(s.history, scaleOutWindow(p));
  const busy = metric(p, out.samples);
  // the backlog is a level, not a rate: its newest value decides a scale-out
  const backlog = s.history.at(-1)!.backlog ?? 0;
  const byBacklog = Math.ceil(backlog / p.backlogPerInstance - 1e-9);
  const byMetric = Math.ceil(busy / p.target - 1e-9);
  const wantOut = clamp(Math.max(byMetric, byBacklog));
  if (wantOut > s.current && nowMs - s.lastScaleOutAt >= p.scaleOutCooldownS * 1000) {
    const why = byBacklog > byMetric ? describeBacklog(p, backlog, s.current) : `${describe(p, busy, s.current)} above target ${p.target}`;
    return { desired: wantOut, direction: 'out', reason: `${why} over the last ${round(out.covered)} s` };
  }
  const inSeconds = scaleInWindow(p);
  const calmWindow = trailing(s.history, inSeconds);
  if (calmWindow.covered < inSeconds - 1e-6) return undefined;
  // the busiest second of the window decides (invocations: the window's mean rate)
  const calm = p.metric === 'concurrency' ? Math.max(...perSecond(calmWindow.samples).map((x) => metric(p, x))) : metric(p, calmWindow.samples);
  const calmBacklog = Math.max(...calmWindow.samples.map((x) => x.backlog ?? 0));
  let wantIn = clamp(Math.max(Math.ceil(calm / (p.target * SCALE_IN_HEADROOM) - 1e-9), Math.ceil(calmBacklog / (p.backlogPerInstance * SCALE_IN_HEADROOM) - 1e-9)));
  // never scale to zero while a request is in the system or waits in the asynchronous queue
  if (wantIn === 0 && (s.history.at(-1)!.inSystem > 0 || backlog > 0)) wantIn = 1;
  if (wantIn < s.current && nowMs - Math.max(s.lastScaleOutAt, s.lastScaleInAt) >= p.scaleInCooldownS * 1000) {
    const backlogNote = calmBacklog > 0 ? `, backlog at most ${calmBacklog}` : '';
    return { desired: wantIn, direction: 'in', reason: `${describe(p, calm, s.current)} below target ${p.target}${backlogNote} over the last ${inSeconds} s` };
  }
  return undefined;
}

/** The metric's total over samples: mean in-flight requests, or invocations per minute. */
function metric(p: ScalingPolicy, samples: Sample[]): number {
  const seconds = samples.reduce((a, x) => a + x.seconds, 0);
  if (seconds === 0) return 0;
  if (p.metric === 'concurrency') return samples.reduce((a, x) => a + x.concurrency * x.seconds, 0) / seconds;
  return (samples.reduce((a, x) => a + x.invocations, 0) * 60) / seconds;
}

/** Groups samples, newest last, into consecutive one-second groups. */
function perSecond(samples: Sample[]): Sample[][] {
  const groups: Sample[][] = [];
  let group: Sample[] = [];
  let seconds = 0;
  for (let i = samples.length - 1; i >= 0; i--) {
    group.unshift(samples[i]!);
    seconds += samples[i]!.seconds;
    if (seconds >= 1 - 1e-6) {
      groups.unshift(group);
      group = [];
      seconds = 0;
    }
  }
  if (group.length) groups.unshift(group);
  return groups;
}

const round = (x: number) => Math.round(x * 10) / 10;

function describe(p: ScalingPolicy, total: number, current: number): string {
  const per = total / Math.max(1, current);
  return p.metric === 'concurrency' ? `in-flight per replica ${per.toFixed(2)}` : `invocations per replica per minute ${per.toFixed(1)}`;
}

function describeBacklog(p: ScalingPolicy, backlog: number, current: number): string {
  return `asynchronous backlog per replica ${(backlog / Math.max(1, current)).toFixed(1)} above target ${p.backlogPerInstance}`;
}

/** What the autoscaler needs of a replica pool. */
export interface Scalable {
  readonly desired: number;
  readonly rollingOut: boolean;
  setDesired(n: number): void;
  sample(): Sample;
}

export type DecisionListener<P extends Scalable> = (pool: P, decision: ScalingDecision & { from: number }) => void;

interface Tracked {
  policy: ScalingPolicy;
  state: ScalingState;
}

/**
 * Samples every tracked pool four times a second and applies decideScaling, so a step in load
 * is acted on within a fraction of a second. A request that finds a pool at zero replicas
 * scales it out at once (no cooldown): it is held until a replica is ready.
 */
export interface AutoscalerOptions<P> {
  /** sampling period, default 250 ms */
  intervalMs?: number;
  /** the pool's share of its endpoint's asynchronous backlog (queued or running requests), read at each sample */
  backlog?: (pool: P) => number;
}

export class Autoscaler<P extends Scalable> {
  private readonly tracked = new Map<P, Tracked>();
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly onDecision: DecisionListener<P>,
    private readonly opts: AutoscalerOptions<P> = {},
  ) {
    this.timer = setInterval(() => this.tick(Date.now()), opts.intervalMs ?? 250);
    this.timer.unref();
  }

  track(pool: P, policy: ScalingPolicy): void {
    const existing = this.tracked.get(pool);
    if (existing) existing.policy = policy;
    else this.tracked.set(pool, { policy, state: { current: pool.desired, history: [], lastScaleOutAt: 0, lastScaleInAt: 0 } });
  }

  untrack(pool: P): void {
    this.tracked.delete(pool);
  }

  /** A request is waiting on a pool with no replica. */
  demand(pool: P): void {
    const t = this.tracked.get(pool);
    if (!t || pool.desired > 0) return;
    const desired = Math.max(1, t.policy.min);
    t.state.lastScaleOutAt = Date.now();
    this.apply(pool, { desired, direction: 'out', reason: 'a request is waiting and no replica runs (scale from zero)' });
  }

  tick(nowMs: number): void {
    for (const [pool, t] of this.tracked) {
      const history = t.state.history;
      history.push({ ...pool.sample(), backlog: this.opts.backlog?.(pool) ?? 0 });
      while (history.reduce((a, x) => a + x.seconds, 0) - history[0]!.seconds >= HISTORY_S) history.shift();
      if (pool.rollingOut) continue; // the rollout owns the replica set until it completes
      t.state.current = pool.desired;
      const d = decideScaling(t.policy, t.state, nowMs);
      if (!d) continue;
      if (d.direction === 'out') t.state.lastScaleOutAt = nowMs;
      else t.state.lastScaleInAt = nowMs;
      this.apply(pool, d);
    }
  }

  private apply(pool: P, d: ScalingDecision): void {
    const from = pool.desired;
    pool.setDesired(d.desired);
    this.onDecision(pool, { ...d, from });
  }

  close(): void {
    clearInterval(this.timer);
    this.tracked.clear();
  }
}
