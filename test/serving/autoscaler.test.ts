import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Autoscaler, decideScaling, type Sample, type ScalingPolicy, type ScalingState } from '../../src/serving/autoscaler.js';

const policy = (p: Partial<ScalingPolicy> = {}): ScalingPolicy => ({ min: 1, max: 8, metric: 'concurrency', target: 2, backlogPerInstance: 10, scaleOutCooldownS: 5, scaleInCooldownS: 10, ...p });
const seconds = (n: number, s: Partial<Sample>): Sample[] => Array.from({ length: n }, () => ({ seconds: 1, concurrency: 0, invocations: 0, inSystem: 0, ...s }));
const state = (current: number, history: Sample[], s: Partial<ScalingState> = {}): ScalingState => ({ current, history, lastScaleOutAt: 0, lastScaleInAt: 0, ...s });
const NOW = 1_000_000;

test('scales out to ceil(in-flight / target) from the last second', () => {
  const d = decideScaling(policy(), state(1, [...seconds(5, { concurrency: 1 }), ...seconds(1, { concurrency: 7 })]), NOW);
  assert.equal(d?.direction, 'out');
  assert.equal(d?.desired, 4);
  assert.match(d!.reason, /in-flight per replica 7\.00 above target 2/);
});

test('scale-out honours max and its cooldown', () => {
  assert.equal(decideScaling(policy({ max: 3 }), state(1, seconds(1, { concurrency: 40 })), NOW)?.desired, 3);
  assert.equal(decideScaling(policy(), state(1, seconds(1, { concurrency: 40 }), { lastScaleOutAt: NOW - 4000 }), NOW), undefined);
  assert.equal(decideScaling(policy(), state(1, seconds(1, { concurrency: 40 }), { lastScaleOutAt: NOW - 5000 }), NOW)?.direction, 'out');
});

test('scales in only after a calm window and the scale-in cooldown, never below min', () => {
  const calm = seconds(10, { concurrency: 0.5 });
  assert.equal(decideScaling(policy(), state(4, calm.slice(0, 9)), NOW), undefined, 'window not full yet');
  assert.equal(decideScaling(policy(), state(4, calm, { lastScaleOutAt: NOW - 9000 }), NOW), undefined, 'cooldown since the last scale-out');
  const d = decideScaling(policy(), state(4, calm, { lastScaleOutAt: NOW - 10_000 }), NOW);
  assert.deepEqual([d?.direction, d?.desired], ['in', 1]);
  // one busy second inside the window keeps the capacity
  const spiky = [...calm.slice(0, 9), { seconds: 1, concurrency: 7, invocations: 0, inSystem: 0 }, ...seconds(0, {})];
  assert.equal(decideScaling(policy({ scaleOutCooldownS: 60 }), state(4, spiky), NOW), undefined);
  assert.equal(decideScaling(policy({ min: 2 }), state(4, calm), NOW)?.desired, 2);
});

test('quarter-second samples: scale-out follows the last second, scale-in needs every second of the window calm', () => {
  const quarter = (n: number, concurrency: number): Sample[] => Array.from({ length: n }, () => ({ seconds: 0.25, concurrency, invocations: 0, inSystem: 0 }));
  // one busy quarter after a calm stretch: the last second's mean is (3 x 0.5 + 7) / 4 = 2.125
  assert.equal(decideScaling(policy(), state(1, [...quarter(20, 0.5), ...quarter(1, 7)]), NOW)?.desired, 2);
  assert.equal(decideScaling(policy(), state(1, [...quarter(20, 0.5), ...quarter(4, 7)]), NOW)?.desired, 4);
  const calm = quarter(40, 0.5);
  assert.equal(decideScaling(policy(), state(3, calm), NOW)?.desired, 1);
  // a single busy second among quarter samples blocks the scale-in
  assert.equal(decideScaling(policy(), state(3, [...quarter(20, 0.5), ...quarter(4, 5), ...quarter(16, 0.5)]), NOW), undefined);
});

test('min 0 scales to zero when idle, but not while a request is in the system', () => {
  const idle = seconds(10, {});
  assert.equal(decideScaling(policy({ min: 0 }), state(1, idle), NOW)?.desired, 0);
  const lastBusy = [...idle.slice(0, 9), { seconds: 1, concurrency: 0.01, invocations: 1, inSystem: 1 }];
  assert.equal(decideScaling(policy({ min: 0 }), state(1, lastBusy), NOW), undefined);
});

test('invocations per replica per minute: the SageMaker metric', () => {
  const p = policy({ metric: 'invocations', target: 600 }); // 10 per second per replica
  const d = decideScaling(p, state(1, seconds(5, { invocations: 25 })), NOW);
  assert.deepEqual([d?.direction, d?.desired], ['out', 3]);
  assert.match(d!.reason, /invocations per replica per minute 1500\.0 above target 600/);
  assert.equal(decideScaling(p, state(3, seconds(10, { invocations: 12 })), NOW)?.desired, 2);
});

class FakePool {
  desired: number;
  rollingOut = false;
  samples: Sample[] = [];
  constructor(desired: number) {
    this.desired = desired;
  }
  setDesired(n: number) {
    this.desired = n;
  }
  sample(): Sample {
    return this.samples.shift() ?? { seconds: 0.25, concurrency: 0, invocations: 0, inSystem: 0 };
  }
}

test('a request waiting on a pool at zero scales it out at once, and every decision is reported with its reason', () => {
  const decisions: string[] = [];
  const a = new Autoscaler<FakePool>((pool, d) => decisions.push(`${d.from}->${d.desired} ${d.direction}: ${d.reason}`), { intervalMs: 60_000 });
  try {
    const pool = new FakePool(0);
    a.track(pool, policy({ min: 0 }));
    a.demand(pool);
    assert.equal(pool.desired, 1);
    a.demand(pool); // already scaling: no second decision
    pool.samples.push({ seconds: 1, concurrency: 9, invocations: 30, inSystem: 9 });
    a.tick(Date.now() + 10_000);
    assert.equal(pool.desired, 5);
    assert.deepEqual(decisions.map((d) => d.split(':')[0]), ['0->1 out', '1->5 out']);
    assert.match(decisions[0]!, /scale from zero/);
    pool.rollingOut = true;
    pool.samples.push({ seconds: 1, concurrency: 40, invocations: 30, inSystem: 9 });
    a.tick(Date.now() + 20_000);
    assert.equal(pool.desired, 5, 'no scaling while a rollout owns the replicas');
  } finally {
    a.close();
  }
});

test('scaling in leaves headroom: a metric hovering just under the target does not flap', () => {
  // 4 replicas, 1.4 in flight in total, target 0.5 per replica: 3 replicas would sit at 0.47, too close
  const hovering = seconds(10, { concurrency: 1.4 });
  assert.equal(decideScaling(policy({ target: 0.5 }), state(4, hovering), NOW), undefined);
  assert.equal(decideScaling(policy({ target: 0.5 }), state(4, seconds(10, { concurrency: 1.1 })), NOW)?.desired, 3);
});

test('an asynchronous backlog raises the replicas beyond what in-flight requests alone give, from zero too', () => {
  // 16 running (in flight 16, target 2: 8 replicas), 1,000 stored: 100 per 10, clamped to max
  const deep = seconds(1, { concurrency: 16, inSystem: 16, backlog: 1000 });
  assert.equal(decideScaling(policy({ max: 8 }), state(1, deep), NOW)?.desired, 8);
  const d = decideScaling(policy({ max: 64 }), state(1, deep), NOW);
  assert.equal(d?.desired, 64);
  assert.match(d!.reason, /asynchronous backlog per replica 1000\.0 above target 10/);
  // 35 stored on an endpoint at zero, nothing in flight yet: ceil(35 / 10) replicas at once
  assert.equal(decideScaling(policy({ min: 0 }), state(0, seconds(1, { backlog: 35 })), NOW)?.desired, 4);
});

test('the backlog keeps replicas while it lasts; once empty and idle the endpoint returns to min 0', () => {
  const draining = seconds(10, { concurrency: 1, inSystem: 1, backlog: 30 });
  // 30 stored needs ceil(30 / (10 x 0.8)) = 4 replicas: no scale-in from 4
  assert.equal(decideScaling(policy({ min: 0 }), state(4, draining), NOW), undefined);
  // a single queued request (not yet in flight) keeps one replica
  assert.equal(decideScaling(policy({ min: 0 }), state(1, [...seconds(9, {}), ...seconds(1, { backlog: 1 })]), NOW), undefined);
  const d = decideScaling(policy({ min: 0 }), state(4, seconds(10, { backlog: 0 })), NOW);
  assert.deepEqual([d?.direction, d?.desired], ['in', 0]);
});

test('the autoscaler reads each pool\'s backlog at every sample', () => {
  const a = new Autoscaler<FakePool>(() => undefined, { intervalMs: 60_000, backlog: () => 25 });
  try {
    const pool = new FakePool(0);
    a.track(pool, policy({ min: 0 }));
    a.tick(Date.now());
    assert.equal(pool.desired, 3);
  } finally {
    a.close();
  }
});
