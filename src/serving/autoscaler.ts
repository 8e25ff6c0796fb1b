/** Target-tracking policy of one endpoint (applied to each of its variants). */
export interface ScalingPolicy {
  min: number;
  max: number;
  /** in-flight requests per replica (sampled every second), or invocations per replica per minute (SageMaker's InvocationsPerInstance) */
  metric: 'concurrency' | 'invocations';
  target: number;
  scaleOutCooldownS: number;
  scaleInCooldownS: number;
}

/** One second of a variant's traffic. */
export interface Sample {
  /** time-weighted mean of requests in the system (waiting or on a replica) */
  concurrency: number;
  invocations: number;
  /** requests in the system at the end of the second */
  inSystem: number;
}

export interface ScalingState {
  /** replicas wanted now (starting or serving) */
  current: number;
  /** newest last, one per second */
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
 * Scaling out is fast: it follows the last second of in-flight requests (a time-weighted mean,
 * so already smooth) or the last 5 s of invocations. Scaling in is slow: the peak over a longer
 * window (the scale-in cooldown, 5 to 30 s) must be low, so a short lull does not remove capacity.
 */
const scaleOutWindow = (p: ScalingPolicy): number => (p.metric === 'concurrency' ? 1 : 5);
const scaleInWindow = (p: ScalingPolicy): number => Math.max(5, Math.min(30, Math.ceil(p.scaleInCooldownS)));
/** Samples kept per variant: enough for the longest window (a minute of invocations). */
export const HISTORY_S = 60;

/**
 * Target tracking: the replicas needed to bring the metric per replica to the target,
 * ceil(total / target), clamped to [min, max], with separate cooldowns for scaling out and in.
 * Returns undefined when nothing should change.
 */
export function decideScaling(p: ScalingPolicy, s: ScalingState, nowMs: number): ScalingDecision | undefined {
  if (s.history.length === 0) return undefined;
  const clamp = (n: number) => Math.min(p.max, Math.max(p.min, n));
  const outSeconds = Math.min(scaleOutWindow(p), s.history.length);
  const busy = windowTotal(p, s.history.slice(-outSeconds), 'mean');
  const wantOut = clamp(Math.ceil(busy.total / p.target - 1e-9));
  if (wantOut > s.current && nowMs - s.lastScaleOutAt >= p.scaleOutCooldownS * 1000) {
    return { desired: wantOut, direction: 'out', reason: `${busy.describe(s.current)} above target ${p.target} over the last ${outSeconds} s` };
  }
  const inSeconds = scaleInWindow(p);
  if (s.history.length < inSeconds) return undefined;
  const calm = windowTotal(p, s.history.slice(-inSeconds), 'peak');
  let wantIn = clamp(Math.ceil(calm.total / p.target - 1e-9));
  // never scale to zero while a request is in the system
  if (wantIn === 0 && s.history.at(-1)!.inSystem > 0) wantIn = 1;
  if (wantIn < s.current && nowMs - Math.max(s.lastScaleOutAt, s.lastScaleInAt) >= p.scaleInCooldownS * 1000) {
    return { desired: wantIn, direction: 'in', reason: `${calm.describe(s.current)} below target ${p.target} over the last ${inSeconds} s` };
  }
  return undefined;
}

function windowTotal(p: ScalingPolicy, samples: Sample[], how: 'mean' | 'peak'): { total: number; describe(current: number): string } {
  if (p.metric === 'concurrency') {
    const values = samples.map((x) => x.concurrency);
    const total = how === 'mean' ? values.reduce((a, b) => a + b, 0) / values.length : Math.max(...values);
    return { total, describe: (c) => `in-flight per replica ${(total / Math.max(1, c)).toFixed(2)}` };
  }
  // invocations per minute, extrapolated from the window (its mean rate, for both directions)
  const total = (samples.reduce((a, x) => a + x.invocations, 0) * 60) / samples.length;
  return { total, describe: (c) => `invocations per replica per minute ${(total / Math.max(1, c)).toFixed(1)}` };
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
 * Samples every tracked pool once a second and applies decideScaling. A request that finds a
 * pool at zero replicas scales it out at once (no cooldown): it is held until a replica is ready.
 */
export class Autoscaler<P extends Scalable> {
  private readonly tracked = new Map<P, Tracked>();
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly onDecision: DecisionListener<P>,
    intervalMs = 1000,
  ) {
    this.timer = setInterval(() => this.tick(Date.now()), intervalMs);
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
      t.state.history.push(pool.sample());
      if (t.state.history.length > HISTORY_S) t.state.history.shift();
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
