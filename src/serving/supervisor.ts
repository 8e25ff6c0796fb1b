import { availableParallelism } from 'node:os';
import type { Logger } from 'pino';
import { KennelError, TypedEmitter, Errors } from '../core/index.js';
import type { ModelCard } from '../registry/index.js';
import type { Sample } from './autoscaler.js';
import type { BatchRun, Device, Precision } from '../inference/index.js';
import type { BatchingConfig } from './protocol.js';
import { ReplicaProcess, type ReplicaExit, type ReplicaState } from './replica-process.js';

/** What a pool's replicas run; a new spec is a new generation, rolled out replica by replica. */
export interface PoolSpec {
  /** "NAME@VERSION" */
  model: string;
  onnxPath: string;
  card: ModelCard;
  device: Device;
  precision: Precision;
  batching: BatchingConfig;
  /** requests one replica may hold (decoding, queued, running); beyond that the router answers 503 */
  maxInFlight: number;
  /** the backbone's feature tensor in the graph (captured requests read it), when the model has one */
  featureTensor?: string;
  /** the replicas run at the lowest CPU priority (a shadow's: they get only the CPU the primary leaves) */
  background?: boolean;
  /** ORT threads per replica, instead of the cores shared out between the pool's replicas (a shadow's: 1) */
  threads?: number;
}

export interface PoolTimings {
  /** a replica that is not ready after this long is killed and counts as a failed start */
  readyTimeoutMs: number;
  /** a ready replica that has not answered a ping for this long is killed and replaced */
  unhealthyAfterMs: number;
  /** how often replicas are pinged and deadlines checked */
  healthIntervalMs: number;
  /** a draining replica still busy after this long is killed */
  drainTimeoutMs: number;
}

export const DEFAULT_TIMINGS: PoolTimings = { readyTimeoutMs: 60_000, unhealthyAfterMs: 10_000, healthIntervalMs: 1000, drainTimeoutMs: 60_000 };

/** Consecutive failed starts of a new generation after which its rollout is abandoned. */
const MAX_ROLLOUT_FAILURES = 3;

export interface PoolEvent {
  kind: 'replica_started' | 'replica_ready' | 'replica_exited' | 'replica_crashed' | 'replica_unhealthy' | 'rollout_started' | 'rollout_completed' | 'rollout_failed';
  endpoint: string;
  variant: string;
  message: string;
  detail: Record<string, unknown>;
}

export interface PoolListener {
  /** a replica or rollout event (started, ready, crashed, ...), for the endpoint's event log */
  event(e: PoolEvent): void;
  /** a replica ran a batch */
  batch(endpoint: string, variant: string, run: BatchRun): void;
  /** a request is waiting and the pool has no replica at all (scale from zero) */
  demand(pool: ReplicaPool): void;
}

export interface ReplicaInfo {
  id: string;
  pid: number | undefined;
  state: ReplicaState;
  model: string;
  generation: number;
  outstanding: number;
  threads: number;
  startedAt: string;
  readyAt?: string;
}

interface Waiter {
  resolve(): void;
  reject(e: unknown): void;
}

interface Rollout {
  fromGeneration: number;
  fromSpec: PoolSpec;
  failures: number;
  lastFailure?: string;
  done: Array<{ resolve(): void; reject(e: unknown): void }>;
}

/**
 * The replicas of one endpoint variant. It keeps `desired` replicas of the current generation
 * running (restarting crashed ones, with backoff when they fail to start), rolls out a new
 * generation one replica at a time (a new replica serves only after its readiness check, then
 * an old one drains its in-flight requests and stops), and hands the router the ready replica
 * with the fewest outstanding requests. Constructed idle (listeners attach); start() starts the
 * replicas and health checks; close() stops them.
 */
export class ReplicaPool {
  private readonly listeners = new TypedEmitter<PoolListener>();
  private readonly replicas: ReplicaProcess[] = [];
  private generation = 1;
  private rollout: Rollout | undefined;
  private startFailures = 0;
  private retryTimer: NodeJS.Timeout | undefined;
  private retryAt = 0;
  private healthTimer: NodeJS.Timeout | undefined;
  private readonly drainingSince = new Map<ReplicaProcess, number>();
  private readonly waiters = new Set<Waiter>();
  private closed = false;
  /** hold() calls not yet released: while any, the ready replicas are stopped */
  private holds = 0;
  /** why the current generation cannot start at all (a missing device): no replica is started until a new spec */
  private failure: string | undefined;
  // time-weighted requests in the system (waiting + on replicas), for the autoscaler
  private inSystem = 0;
  private area = 0;
  private lastChange = performance.now();
  private sampleStart = performance.now();
  private invocations = 0;

  constructor(
    readonly endpoint: string,
    readonly variant: string,
    private spec: PoolSpec,
    private desiredCount: number,
    private readonly log: Logger,
    private readonly timings: PoolTimings = DEFAULT_TIMINGS,
  ) {}

  on<U extends keyof PoolListener>(event: U, listener: PoolListener[U]): this {
    this.listeners.on(event, listener);
    return this;
  }

  /** Starts the desired replicas and the health checks. */
  start(): this {
    if (this.healthTimer || this.closed) return this;
    this.healthTimer = setInterval(() => this.checkHealth(), this.timings.healthIntervalMs);
    this.healthTimer.unref();
    this.reconcile();
    return this;
  }

  get desired(): number {
    return this.desiredCount;
  }

  get model(): string {
    return this.spec.model;
  }

  get currentSpec(): PoolSpec {
    return this.spec;
  }

  /** Replicas of the current generation that are starting or serving. */
  get activeCount(): number {
    return this.replicas.filter((r) => r.generation === this.generation && (r.state === 'starting' || r.state === 'ready')).length;
  }

  get readyCount(): number {
    return this.replicas.filter((r) => r.state === 'ready').length;
  }

  /** why this pool cannot start its replicas (then it starts none until a new spec), if so */
  get failed(): string | undefined {
    return this.failure;
  }

  get rollingOut(): boolean {
    return this.rollout !== undefined;
  }

  /** Requests in the system: waiting for a replica or on one. */
  get inFlight(): number {
    return this.inSystem;
  }

  /** The in-flight limit is the router's; changing it needs no new replicas. */
  setMaxInFlight(n: number): void {
    this.spec = { ...this.spec, maxInFlight: n };
  }

  setDesired(n: number): void {
    this.desiredCount = n;
    this.reconcile();
  }

  /**
   * Rolls out a new spec; resolves when no replica of an older generation is left. When new
   * replicas keep failing their readiness check, the pool goes back to the previous spec (whose
   * replicas never stopped serving) and this rejects.
   */
  setSpec(spec: PoolSpec): Promise<void> {
    if (this.rollout) this.rollout.done.forEach((d) => d.reject(Errors.Conflict(`The rollout of ${this.spec.model} was replaced by a newer update.`)));
    const done: Rollout['done'] = [];
    const result = new Promise<void>((resolve, reject) => done.push({ resolve, reject }));
    this.rollout = { fromGeneration: this.rollout?.fromGeneration ?? this.generation, fromSpec: this.rollout?.fromSpec ?? this.spec, failures: 0, done };
    this.emit('rollout_started', `rolling out ${spec.model} (was ${this.spec.model})`, { from: this.spec.model, to: spec.model });
    this.spec = spec;
    this.generation++;
    this.failure = undefined;
    this.startFailures = 0;
    this.retryAt = 0; // backoff from the previous generation's failures does not delay the new one
    this.reconcile();
    return result;
  }

  /**
   * The ready replica with the fewest outstanding requests. With no ready replica the request
   * waits (until `deadline`) for one; when every ready replica is at its in-flight limit the
   * pool is overloaded and the caller gets a 503 at once, instead of growing latency.
   */
  async acquire(deadline: number): Promise<ReplicaProcess> {
    for (;;) {
      if (this.closed) throw Errors.EndpointStopping(`Endpoint ${this.endpoint} is being deleted.`);
      if (this.failure) throw cannotStart(this.endpoint, this.failure);
      const best = this.leastBusy();
      if (best && best.outstanding < this.spec.maxInFlight) return best;
      if (best) throw overloaded(this.endpoint);
      // held until a replica is ready, but not without bound: as many as the replicas being started could hold
      if (this.waiters.size >= this.spec.maxInFlight * Math.max(1, this.desiredCount)) throw overloaded(this.endpoint);
      if (this.activeCount === 0) this.listeners.emit('demand', this);
      await this.waitForReady(deadline);
    }
  }

  /**
   * The ready replica with the fewest outstanding requests if it holds fewer than `limit`, else
   * undefined at once: never waits and never starts a replica (a shadow drops what it cannot take).
   */
  tryAcquire(limit: number): ReplicaProcess | undefined {
    if (this.closed || this.failure) return undefined;
    const best = this.leastBusy();
    return best && best.outstanding < Math.min(limit, this.spec.maxInFlight) ? best : undefined;
  }

  /** The replica that can take a request now (ReplicaProcess.accepting) with the fewest outstanding. */
  private leastBusy(): ReplicaProcess | undefined {
    let best: ReplicaProcess | undefined;
    for (const r of this.replicas) if (r.accepting && (!best || r.outstanding < best.outstanding)) best = r;
    return best;
  }

  /**
   * Stops the ready replicas (SIGSTOP: not one instruction of theirs runs) until a matching
   * release(); holds nest. A shadow's pool is held while its primary has requests in flight, so
   * mirrored requests run only on CPU the primary leaves idle, not beside it; health checks of a
   * held replica wait until it runs again.
   */
  hold(): void {
    if (this.holds++ === 0) for (const r of this.replicas) if (r.state === 'ready') r.hold(true);
  }

  release(): void {
    if (this.holds === 0 || --this.holds > 0) return;
    for (const r of this.replicas) r.hold(false);
  }

  /** Called by the router around every request on this pool (including time spent waiting). */
  begin(): void {
    this.account(1);
  }

  end(): void {
    this.account(-1);
    this.invocations++;
  }

  /** Mean requests in the system since the last sample, and invocations since then. */
  sample(): Sample {
    this.account(0);
    const elapsed = performance.now() - this.sampleStart;
    const concurrency = elapsed > 0 ? this.area / elapsed : this.inSystem;
    const out = { seconds: elapsed / 1000, concurrency, invocations: this.invocations, inSystem: this.inSystem };
    this.area = 0;
    this.invocations = 0;
    this.sampleStart = performance.now();
    return out;
  }

  private account(delta: number): void {
    const t = performance.now();
    this.area += this.inSystem * (t - this.lastChange);
    this.lastChange = t;
    this.inSystem += delta;
  }

  get waiting(): number {
    return this.waiters.size;
  }

  snapshot(): ReplicaInfo[] {
    return this.replicas.map((r) => ({
      id: r.id,
      pid: r.pid,
      state: r.state,
      model: r.config.model,
      generation: r.generation,
      outstanding: r.outstanding,
      threads: r.config.threads,
      startedAt: new Date(r.startedAt).toISOString(),
      readyAt: r.readyAt === undefined ? undefined : new Date(r.readyAt).toISOString(),
    }));
  }

  async close(): Promise<void> {
    this.closed = true;
    this.holds = 0;
    clearInterval(this.healthTimer);
    clearTimeout(this.retryTimer);
    for (const w of this.waiters) w.reject(Errors.EndpointStopping(`Endpoint ${this.endpoint} is being deleted.`));
    this.waiters.clear();
    this.rollout?.done.forEach((d) => d.reject(Errors.Conflict(`Endpoint ${this.endpoint} was deleted during its rollout.`)));
    this.rollout = undefined;
    await Promise.all(this.replicas.map((r) => r.close(!(r.state === 'ready' || r.state === 'draining'))));
  }

  private waitForReady(deadline: number): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.delete(w);
        reject(Errors.NoReplica(`No replica of endpoint ${this.endpoint} became ready in time.`, 'The endpoint is starting or scaling from zero; retry shortly (see kennel endpoints describe).'));
      }, Math.max(0, deadline - Date.now()));
      const w: Waiter = {
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      };
      this.waiters.add(w);
    });
  }

  private wakeWaiters(): void {
    for (const w of this.waiters) w.resolve();
    this.waiters.clear();
  }

  /** Brings the replica set towards the spec: start, retire and drain, never below `desired` serving during a rollout. */
  private reconcile(): void {
    if (this.closed || this.failure || !this.healthTimer) return;
    const live = this.replicas.filter((r) => r.state === 'starting' || r.state === 'ready');
    const current = live.filter((r) => r.generation === this.generation);
    const old = live.filter((r) => r.generation !== this.generation);
    // an old replica that is not serving yet is of no use: stop it at once
    for (const r of old) if (r.state === 'starting') void r.close(true);
    const oldReady = old.filter((r) => r.state === 'ready');
    const currentReady = current.filter((r) => r.state === 'ready');

    if (current.length > this.desiredCount) {
      const extra = [...current].sort((a, b) => (a.state === b.state ? a.outstanding - b.outstanding : a.state === 'starting' ? -1 : 1));
      for (const r of extra.slice(0, current.length - this.desiredCount)) this.retire(r);
    }
    // during a rollout at most one replica above the desired count (surge 1), none below
    const room = oldReady.length ? this.desiredCount + 1 - current.length - oldReady.length : this.desiredCount - current.length;
    const toStart = Math.max(0, Math.min(this.desiredCount - current.length, room));
    if (toStart > 0) this.startReplicas(toStart);

    let excess = Math.min(currentReady.length, this.desiredCount) + oldReady.length - this.desiredCount;
    for (const r of [...oldReady].sort((a, b) => a.outstanding - b.outstanding)) {
      if (excess-- <= 0) break;
      this.retire(r);
    }
    if (this.rollout && !this.replicas.some((r) => r.generation !== this.generation)) {
      const done = this.rollout.done;
      this.rollout = undefined;
      this.emit('rollout_completed', `rollout of ${this.spec.model} completed`, { model: this.spec.model });
      done.forEach((d) => d.resolve());
    }
  }

  private startReplicas(n: number): void {
    const wait = this.retryAt - Date.now();
    if (wait > 0) {
      this.retryTimer ??= setTimeout(() => {
        this.retryTimer = undefined;
        this.reconcile();
      }, wait);
      return;
    }
    const cores = availableParallelism();
    const threads = this.spec.threads ?? Math.max(1, Math.floor(cores / Math.max(1, this.desiredCount)));
    for (let i = 0; i < n; i++) {
      const { model, onnxPath, card, device, precision, batching, background, featureTensor } = this.spec;
      const r = new ReplicaProcess({ model, onnxPath, card, device, precision, batching, threads, background, ...(featureTensor ? { featureTensor } : {}) }, this.generation, this.log)
        .on('ready', () => this.onReady(r))
        .on('exit', (info) => this.onExit(r, info))
        .on('settled', () => this.stopWhenDrained(r))
        .on('batch', (run) => this.listeners.emit('batch', this.endpoint, this.variant, run));
      this.replicas.push(r);
      r.start();
      this.emit('replica_started', `replica ${r.id} (pid ${r.pid}) starting ${model}`, { replica: r.id, pid: r.pid, model, threads });
    }
  }

  /** Stops routing to a replica; it exits once its in-flight requests are answered. */
  private retire(r: ReplicaProcess): void {
    if (r.state === 'starting') {
      void r.close(true);
      return;
    }
    if (r.state !== 'ready') return;
    r.state = 'draining';
    this.drainingSince.set(r, Date.now());
    this.stopWhenDrained(r);
  }

  private stopWhenDrained(r: ReplicaProcess): void {
    if (r.state === 'draining' && r.outstanding === 0) void r.close();
  }

  private onReady(r: ReplicaProcess): void {
    if (r.generation === this.generation) this.startFailures = 0;
    if (this.holds > 0) r.hold(true);
    this.emit('replica_ready', `replica ${r.id} (pid ${r.pid}) ready in ${((r.readyAt! - r.startedAt) / 1000).toFixed(1)} s`, { replica: r.id, pid: r.pid, seconds: (r.readyAt! - r.startedAt) / 1000 });
    this.reconcile();
    this.wakeWaiters();
  }

  private onExit(r: ReplicaProcess, info: ReplicaExit): void {
    this.replicas.splice(this.replicas.indexOf(r), 1);
    this.drainingSince.delete(r);
    if (this.closed) return;
    const how = info.signal ? `signal ${info.signal}` : `code ${info.code}`;
    if (info.expected) {
      this.emit('replica_exited', `replica ${r.id} (pid ${r.pid}) stopped`, { replica: r.id, pid: r.pid });
    } else {
      this.emit('replica_crashed', `replica ${r.id} (pid ${r.pid}) exited unexpectedly (${how})${info.reason ? `: ${info.reason}` : ''}`, { replica: r.id, pid: r.pid, code: info.code, signal: info.signal, reason: info.reason, wasReady: info.wasReady });
      if (!info.wasReady && r.generation === this.generation) this.onStartFailure(info.reason ?? how, info.permanent ?? false);
    }
    this.reconcile();
  }

  /** `permanent`: every retry would fail the same way (no device), so give up at once instead of looping. */
  private onStartFailure(reason: string, permanent: boolean): void {
    this.startFailures++;
    this.retryAt = Date.now() + Math.min(30_000, 500 * 2 ** (this.startFailures - 1));
    const rollout = this.rollout;
    if (!rollout) {
      if (!permanent) return;
      this.failure = reason;
      for (const r of this.replicas) if (r.generation === this.generation && r.state === 'starting') void r.kill();
      this.emit('rollout_failed', `replicas of ${this.spec.model} cannot start (${reason}); none will be started until the endpoint is updated`, { model: this.spec.model, reason });
      for (const w of this.waiters) w.reject(cannotStart(this.endpoint, reason));
      this.waiters.clear();
      return;
    }
    rollout.failures++;
    rollout.lastFailure = reason;
    if (rollout.failures < MAX_ROLLOUT_FAILURES && !permanent) return;
    // give up: the previous generation (still serving) becomes current again
    const failed = this.spec.model;
    this.rollout = undefined;
    this.spec = rollout.fromSpec;
    this.generation = rollout.fromGeneration;
    this.startFailures = 0;
    this.retryAt = 0;
    this.emit('rollout_failed', `rollout of ${failed} failed its readiness check ${rollout.failures} times (${reason}); kept ${this.spec.model}`, { model: failed, kept: this.spec.model, reason });
    const err = Errors.RolloutFailed(`The new replicas of ${failed} failed their readiness check ${rollout.failures} times (${reason}); the endpoint keeps serving ${this.spec.model}.`, 'Check the model with kennel predict, and the daemon log for details.');
    rollout.done.forEach((d) => d.reject(err));
  }

  private checkHealth(): void {
    const now = Date.now();
    for (const r of this.replicas) {
      if (r.state === 'starting' && now - r.startedAt > this.timings.readyTimeoutMs) {
        this.emit('replica_unhealthy', `replica ${r.id} (pid ${r.pid}) was not ready after ${this.timings.readyTimeoutMs / 1000} s; killing it`, { replica: r.id, pid: r.pid });
        void r.kill();
      } else if ((r.state === 'ready' || r.state === 'draining') && this.holds === 0) {
        if (now - r.lastPong > this.timings.unhealthyAfterMs) {
          this.emit('replica_unhealthy', `replica ${r.id} (pid ${r.pid}) stopped answering health checks; replacing it`, { replica: r.id, pid: r.pid });
          void r.kill();
          continue;
        }
        const since = this.drainingSince.get(r);
        if (since !== undefined && now - since > this.timings.drainTimeoutMs) void r.close(true);
        else r.ping();
      }
    }
  }

  private emit(kind: PoolEvent['kind'], message: string, detail: Record<string, unknown>): void {
    this.listeners.emit('event', { kind, endpoint: this.endpoint, variant: this.variant, message, detail });
  }
}

/** A pool whose replicas cannot start: 503 to callers of the endpoint, 422 to whoever created or updated it. */
export function cannotStart(endpoint: string, reason: string, status = 503): KennelError {
  return Errors.StartFailed(`The replicas of endpoint ${endpoint} cannot start: ${reason.replace(/\.$/, '')}.`, `Update it (e.g. kennel endpoints update ${endpoint} --device cpu) or delete it.`, status);
}

export function overloaded(endpoint: string): KennelError {
  return Errors.Overloaded(`Endpoint ${endpoint} is at capacity.`, 'Retry after a moment; the endpoint sheds load instead of queueing without bound.');
}
