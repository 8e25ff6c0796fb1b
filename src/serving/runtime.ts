import type { Logger } from 'pino';
import { Errors, KennelError } from '../core/index.js';
import { assertDevice, type BatchRun } from '../inference/index.js';
import { FEATURES_OUTPUT } from '../backbones/index.js';
import { getModel, type ModelCard } from '../registry/index.js';
import { CaptureSink } from './capture.js';
import type { Workspace } from '../store/index.js';
import { Autoscaler, type ScalingPolicy } from './autoscaler.js';
import {
  getEndpoint,
  findEndpoint,
  insertEndpoint,
  listEndpoints,
  listEvents,
  planCreate,
  planUpdate,
  recordEvent,
  removeEndpoint,
  saveDesired,
  saveEndpoint,
  scalingPolicy,
  type Endpoint,
  type EndpointEvent,
  type EndpointSpec,
  type Shadow,
  type Variant,
  SHADOW_VARIANT,
  PRIMARY_VARIANT,
} from './endpoints.js';
import { Router } from './router.js';
import { clearShadowResults, latestShadow, shadowReport, ShadowMirror, type ShadowReport } from './shadow.js';
import { cannotStart, DEFAULT_TIMINGS, ReplicaPool, type PoolEvent, type PoolSpec, type PoolTimings, type ReplicaInfo } from './supervisor.js';

/** Observability hooks (the daemon feeds Prometheus metrics from them). */
export interface ServingHooks {
  /** a replica ran a batch (its images, and its model run's ms as its batcher waited for it) */
  batch(endpoint: string, variant: string, run: BatchRun): void;
  scaling(endpoint: string, variant: string, direction: 'out' | 'in'): void;
}

export interface RuntimeOptions {
  log: Logger;
  hooks?: Partial<ServingHooks>;
  timings?: PoolTimings;
  /** how long create/update wait for replicas to become ready, default 120 s */
  readyWaitMs?: number;
  /** an endpoint's asynchronous requests stored and not finished (queued or running), for autoscaling */
  backlog?: (endpoint: string) => number;
}

export interface VariantDescription {
  name: string;
  model: string;
  weight: number;
  /** share of traffic, from the weights */
  traffic: number;
  desired: number;
  ready: number;
  replicas: ReplicaInfo[];
}

export interface ShadowDescription extends Shadow {
  desired: number;
  ready: number;
  replicas: ReplicaInfo[];
}

export interface EndpointDescription {
  name: string;
  /** failed: its replicas cannot start (e.g. no GPU for --device webgpu) until it is updated */
  status: 'in_service' | 'starting' | 'updating' | 'scaled_to_zero' | 'failed';
  path: string;
  variants: VariantDescription[];
  replicas: Array<ReplicaInfo & { variant: string }>;
  /** the shadow variant: gets a copy of a share of the requests; its answers are compared, never returned */
  shadow: ShadowDescription | null;
  autoscaling: ScalingPolicy | null;
  spec: EndpointSpec;
  events: EndpointEvent[];
  createdAt: string;
  updatedAt: string;
  /** create only: the endpoint existed with exactly this spec, so nothing was changed */
  unchanged?: boolean;
}

/** One variant as ServingRuntime.served() tells it. */
export interface ServedVariant {
  variant: string;
  /** "NAME@VERSION" */
  model: string;
  card: ModelCard;
  /** it can take requests now: a ready replica, or scaled to zero (a request starts one) */
  ready: boolean;
}

/** Gauges for one variant, read at scrape time. */
export interface VariantLoad {
  endpoint: string;
  variant: string;
  replicas: Record<string, number>;
  /** requests waiting for a replica or on one */
  queued: number;
}

interface Live {
  endpoint: Endpoint;
  pools: Map<string, ReplicaPool>;
  /** the shadow's mirror (with its pool), when the endpoint has a shadow */
  shadow?: ShadowMirror;
  /** the data capture, when the endpoint captures requests */
  capture?: CaptureSink;
}

/** Mirrored requests one shadow replica may hold; more are dropped (and counted), never queued. */
const shadowPerReplica = (spec: EndpointSpec): number => 2 * spec.maxBatch;

/**
 * The serving control loop: persisted endpoints become replica pools behind the router, under
 * the autoscaler. Changes to one endpoint are applied one at a time (create, update with rolling
 * rollout, delete); the endpoints table always holds what is running, so a restarted daemon
 * brings every endpoint back as it was.
 */
export class ServingRuntime {
  readonly router: Router;
  private readonly autoscaler: Autoscaler<ReplicaPool>;
  private readonly live = new Map<string, Live>();
  private readonly locks = new Map<string, Promise<unknown>>();
  private closed = false;

  constructor(
    private readonly ws: Workspace,
    private readonly opts: RuntimeOptions,
  ) {
    this.router = new Router(opts.log);
    this.autoscaler = new Autoscaler<ReplicaPool>((pool, d) => {
      const live = this.live.get(pool.endpoint);
      if (!live) return;
      live.endpoint.desired[pool.variant] = d.desired;
      saveDesired(this.ws, pool.endpoint, live.endpoint.desired);
      const message = `scaled ${pool.variant} ${d.direction} from ${d.from} to ${d.desired} replicas: ${d.reason}`;
      this.event(pool.endpoint, d.direction === 'out' ? 'scale_out' : 'scale_in', message, { variant: pool.variant, from: d.from, to: d.desired, reason: d.reason });
      opts.hooks?.scaling?.(pool.endpoint, pool.variant, d.direction);
    }, { backlog: (pool) => this.backlogOf(pool) });
  }

  /** A variant's share of its endpoint's asynchronous backlog: the router sends it that share of the requests. */
  private backlogOf(pool: ReplicaPool): number {
    const spec = this.live.get(pool.endpoint)?.endpoint.spec;
    const backlog = this.opts.backlog?.(pool.endpoint) ?? 0;
    if (!spec || backlog === 0) return 0;
    const total = spec.variants.reduce((a, v) => a + v.weight, 0);
    return Math.ceil((backlog * (spec.variants.find((v) => v.name === pool.variant)?.weight ?? 0)) / total);
  }

  /** Starts every persisted endpoint with the replicas it had. */
  async start(): Promise<void> {
    for (const e of listEndpoints(this.ws)) {
      try {
        await this.launch(e);
      } catch (err) {
        this.event(e.spec.name, 'start_failed', `could not start endpoint ${e.spec.name}: ${(err as Error).message}`);
      }
    }
  }

  create(input: unknown, opts: { wait?: boolean } = {}): Promise<EndpointDescription> {
    const name = (input as { name?: unknown })?.name;
    return this.exclusive(typeof name === 'string' ? name : '', async () => {
      const spec = planCreate(this.ws, input);
      const existing = findEndpoint(this.ws, spec.name);
      // creating what exists is a no-op, so a setup script can run twice; a different spec is an update
      if (existing && JSON.stringify(existing.spec) === JSON.stringify(spec)) return { ...this.describe(spec.name), unchanged: true };
      if (existing) throw Errors.Conflict(`Endpoint ${spec.name} already exists with other settings.`, `Change it with kennel endpoints update ${spec.name} (e.g. --model ${spec.variants[0]?.model}), or delete it first.`);
      await assertDevice(spec.device); // a missing GPU is a 422 now, not replicas that can never start
      await Promise.all([...spec.variants, ...(spec.shadow ? [{ name: SHADOW_VARIANT, model: spec.shadow.model, weight: 1 }] : [])].map((v) => this.poolSpec(v, spec))); // every model is loadable before anything is stored
      const endpoint = insertEndpoint(this.ws, spec);
      this.event(spec.name, 'created', `created with ${spec.variants.map((v) => `${v.name}=${v.model}`).join(', ')}, ${spec.instances} instance(s) per variant`);
      const live = await this.launch(endpoint);
      if (opts.wait ?? true) await this.waitReady(live, [...live.pools.values(), ...(live.shadow ? [live.shadow.pool] : [])]);
      return this.describe(spec.name);
    });
  }

  update(name: string, input: unknown, opts: { wait?: boolean } = {}): Promise<EndpointDescription> {
    return this.exclusive(name, async () => {
      const live = this.require(name);
      const before = live.endpoint.spec;
      const spec = planUpdate(this.ws, before, input);
      await assertDevice(spec.device);
      const given = (input ?? {}) as { instances?: number };
      const desired: Record<string, number> = {};
      for (const v of spec.variants) {
        const had = live.endpoint.desired[v.name];
        desired[v.name] = given.instances !== undefined || had === undefined ? spec.instances : Math.min(spec.max, Math.max(spec.min, had));
      }
      const specs = new Map(await Promise.all(spec.variants.map(async (v) => [v.name, await this.poolSpec(v, spec)] as const)));
      live.endpoint = { ...live.endpoint, spec, desired, updatedAt: new Date().toISOString() };
      saveEndpoint(this.ws, spec, desired);
      this.event(name, 'updated', `updated: ${describeChange(before, spec)}`);

      const rollouts: Array<Promise<void>> = [];
      const added: ReplicaPool[] = [];
      const policy = scalingPolicy(spec);
      for (const v of spec.variants) {
        const ps = specs.get(v.name)!;
        let pool = live.pools.get(v.name);
        if (!pool) {
          pool = this.newPool(name, v.name, ps, desired[v.name]!).start();
          live.pools.set(v.name, pool);
          added.push(pool);
        } else {
          if (poolSpecChanged(pool.currentSpec, ps)) rollouts.push(this.rollout(live, pool, v.name, ps));
          else pool.setMaxInFlight(ps.maxInFlight);
          pool.setDesired(desired[v.name]!);
        }
        if (policy) this.autoscaler.track(pool, policy);
        else this.autoscaler.untrack(pool);
      }
      const oldShadow = await this.changeShadow(live, before.shadow, spec);
      if (!spec.capture) {
        live.capture?.close();
        live.capture = undefined;
      } else if (live.capture) live.capture.capture = spec.capture;
      else live.capture = new CaptureSink(this.ws, name, spec.capture);
      // new variants (and a new shadow) get traffic once they can serve it
      if (opts.wait ?? true) await this.waitReady(live, live.shadow && live.shadow !== oldShadow?.mirror ? [...added, live.shadow.pool] : added);
      this.route(live);
      if (oldShadow) {
        oldShadow.mirror.close();
        if (oldShadow.closePool) await oldShadow.mirror.pool.close();
      }
      const removed = [...live.pools.entries()].filter(([variant]) => !spec.variants.some((v) => v.name === variant));
      for (const [variant, pool] of removed) {
        live.pools.delete(variant);
        this.autoscaler.untrack(pool);
      }
      await Promise.all(removed.map(([, pool]) => pool.close()));
      if (opts.wait ?? true) await Promise.all(rollouts);
      else for (const r of rollouts) r.catch(() => {}); // failures are recorded as events and reverted
      return this.describe(name);
    });
  }

  delete(name: string): Promise<void> {
    return this.exclusive(name, async () => {
      const live = this.require(name);
      this.router.remove(name);
      this.live.delete(name);
      for (const pool of live.pools.values()) this.autoscaler.untrack(pool);
      live.shadow?.close();
      live.capture?.close();
      await Promise.all([...live.pools.values(), ...(live.shadow ? [live.shadow.pool] : [])].map((p) => p.close()));
      removeEndpoint(this.ws, name);
      this.opts.log.info({ endpoint: name }, 'endpoint deleted');
    });
  }

  describe(name: string): EndpointDescription {
    const live = this.require(name);
    const { spec } = live.endpoint;
    const totalWeight = spec.variants.reduce((s, v) => s + v.weight, 0);
    const variants = spec.variants.map((v): VariantDescription => {
      const pool = live.pools.get(v.name)!;
      return { name: v.name, model: pool.model, weight: v.weight, traffic: v.weight / totalWeight, desired: pool.desired, ready: pool.readyCount, replicas: pool.snapshot() };
    });
    const pools = [...live.pools.values()];
    const status = pools.some((p) => p.failed)
      ? 'failed'
      : pools.some((p) => p.rollingOut)
      ? 'updating'
      : pools.every((p) => p.desired === 0 && p.readyCount === 0)
        ? 'scaled_to_zero'
        : pools.every((p) => p.desired === 0 || p.readyCount > 0)
          ? 'in_service'
          : 'starting';
    return {
      name,
      status,
      path: `/endpoints/${name}/invocations`,
      variants,
      replicas: variants.flatMap((v) => v.replicas.map((r) => ({ ...r, variant: v.name }))),
      shadow: live.shadow ? { ...live.shadow.shadow, desired: live.shadow.pool.desired, ready: live.shadow.pool.readyCount, replicas: live.shadow.pool.snapshot() } : null,
      autoscaling: scalingPolicy(spec) ?? null,
      spec,
      events: listEvents(this.ws, name, 20),
      createdAt: live.endpoint.createdAt,
      updatedAt: live.endpoint.updatedAt,
    };
  }

  /**
   * What each variant of an endpoint runs ("NAME@VERSION" and the model card: input spec,
   * labels) and whether it can take requests: for the Open Inference Protocol's model metadata and
   * readiness. A variant scaled to zero can (its first request starts a replica).
   */
  served(name: string): ServedVariant[] {
    const live = this.require(name);
    return live.endpoint.spec.variants.map((v) => {
      const pool = live.pools.get(v.name)!;
      return { variant: v.name, model: pool.model, card: pool.currentSpec.card, ready: !pool.failed && (pool.readyCount > 0 || pool.desired === 0) };
    });
  }

  list(): EndpointDescription[] {
    return [...this.live.keys()].sort().map((n) => this.describe(n));
  }

  /**
   * How the endpoint's shadow compares with its primary: agreement, per-class disagreement,
   * latency and errors of both. Without a shadow now, the last one's comparison (until another
   * starts or the endpoint is deleted).
   */
  shadowReport(name: string): ShadowReport & { active: boolean } {
    const live = this.require(name);
    const current = live.endpoint.spec.shadow;
    live.shadow?.flush();
    return { ...shadowReport(this.ws, name, current ?? latestShadow(this.ws, name)), active: current !== null };
  }

  /** Writes an endpoint's buffered captures now (a drift check wants the newest). */
  flushCapture(name: string): void {
    this.live.get(name)?.capture?.flush();
  }

  /** Makes the shadow's model the primary's (a rolling update) and stops the shadow: one step. */
  async promoteShadow(name: string, opts: { wait?: boolean } = {}): Promise<EndpointDescription> {
    const shadow = this.require(name).endpoint.spec.shadow;
    if (!shadow) throw Errors.InvalidRequest(`Endpoint ${name} has no shadow to promote.`, `Start one first: kennel endpoints update ${name} --shadow MODEL.`);
    return this.update(name, { variants: [{ name: PRIMARY_VARIANT, model: shadow.model }], shadow: null }, opts);
  }

  load(): VariantLoad[] {
    const out: VariantLoad[] = [];
    for (const [endpoint, live] of this.live) {
      const pools = live.shadow ? [...live.pools, [SHADOW_VARIANT, live.shadow.pool] as const] : live.pools;
      for (const [variant, pool] of pools) {
        const replicas: Record<string, number> = { starting: 0, ready: 0, draining: 0 };
        for (const r of pool.snapshot()) if (r.state in replicas) replicas[r.state]!++;
        out.push({ endpoint, variant, replicas, queued: pool.inFlight });
      }
    }
    return out;
  }

  async close(): Promise<void> {
    this.closed = true;
    this.autoscaler.close();
    const all = [...this.live.values()].flatMap((l) => [...l.pools.values(), ...(l.shadow ? [l.shadow.pool] : [])]);
    for (const l of this.live.values()) {
      l.shadow?.close();
      l.capture?.close();
    }
    for (const name of this.live.keys()) this.router.remove(name);
    this.live.clear();
    await Promise.all(all.map((p) => p.close()));
  }

  private async launch(endpoint: Endpoint): Promise<Live> {
    const { spec } = endpoint;
    const policy = scalingPolicy(spec);
    const live: Live = { endpoint, pools: new Map() };
    for (const v of spec.variants) {
      const desired = endpoint.desired[v.name] ?? spec.instances;
      const pool = this.newPool(spec.name, v.name, await this.poolSpec(v, spec), desired);
      live.pools.set(v.name, pool);
      if (policy) this.autoscaler.track(pool, policy);
      pool.start();
    }
    if (spec.shadow) live.shadow = this.newShadow(spec, spec.shadow, await this.shadowPool(spec, spec.shadow));
    if (spec.capture) live.capture = new CaptureSink(this.ws, spec.name, spec.capture);
    this.live.set(spec.name, live);
    this.route(live);
    return live;
  }

  /** A started pool for a shadow: a fixed number of replicas at the lowest CPU priority, never autoscaled. */
  private async shadowPool(spec: EndpointSpec, shadow: Shadow): Promise<ReplicaPool> {
    return this.newPool(spec.name, SHADOW_VARIANT, await this.shadowSpec(spec, shadow), shadow.instances).start();
  }

  private async shadowSpec(spec: EndpointSpec, shadow: Shadow): Promise<PoolSpec> {
    const ps = await this.poolSpec({ name: SHADOW_VARIANT, model: shadow.model, weight: 1 }, spec);
    return { ...ps, maxInFlight: shadowPerReplica(spec), background: true, threads: 1 };
  }

  private newShadow(spec: EndpointSpec, shadow: Shadow, pool: ReplicaPool): ShadowMirror {
    clearShadowResults(this.ws, spec.name, shadow.model); // a new shadow model starts a new comparison
    return new ShadowMirror(this.ws, spec.name, shadow, pool, shadowPerReplica(spec));
  }

  /**
   * Applies a shadow change of an update to `live`: starts, changes or stops the shadow. Returns
   * the mirror it replaced (to close once the router no longer sees it) and whether its pool goes
   * too (a new model or replica count) or lives on in the new mirror (a new share).
   */
  private async changeShadow(live: Live, before: Shadow | null, spec: EndpointSpec): Promise<{ mirror: ShadowMirror; closePool: boolean } | undefined> {
    const old = live.shadow;
    const next = spec.shadow;
    old?.pool.setMaxInFlight(shadowPerReplica(spec));
    if (JSON.stringify(before) === JSON.stringify(next) && old) return undefined;
    if (!next) {
      live.shadow = undefined;
      return old && { mirror: old, closePool: true };
    }
    const samePool = old !== undefined && old.shadow.model === next.model && old.shadow.instances === next.instances && !poolSpecChanged(old.pool.currentSpec, { ...(await this.shadowSpec(spec, next)) });
    const pool = samePool ? old.pool : await this.shadowPool(spec, next);
    live.shadow = this.newShadow(spec, next, pool);
    return old && { mirror: old, closePool: !samePool };
  }

  /** A pool with its listeners; it starts its replicas on start(). */
  private newPool(endpoint: string, variant: string, spec: PoolSpec, desired: number): ReplicaPool {
    return new ReplicaPool(endpoint, variant, spec, desired, this.opts.log, this.opts.timings ?? DEFAULT_TIMINGS)
      .on('event', (e) => this.poolEvent(e))
      .on('batch', (ep, v, run) => this.opts.hooks?.batch?.(ep, v, run))
      .on('demand', (pool) => this.autoscaler.demand(pool));
  }

  private route(live: Live): void {
    const { spec } = live.endpoint;
    this.router.set(
      spec.name,
      spec.variants.map((v) => ({ name: v.name, weight: v.weight, pool: live.pools.get(v.name)! })),
      spec.timeoutMs,
      live.shadow,
      live.capture,
    );
  }

  /** Rolls a variant to its new spec; when the new replicas fail their readiness check, the stored spec goes back to the model still serving. */
  private async rollout(live: Live, pool: ReplicaPool, variant: string, spec: PoolSpec): Promise<void> {
    try {
      await pool.setSpec(spec);
    } catch (e) {
      if (Errors.RolloutFailed.is(e) && this.live.get(live.endpoint.spec.name) === live) {
        const current = live.endpoint.spec;
        const reverted = { ...current, variants: current.variants.map((v) => (v.name === variant ? { ...v, model: pool.model } : v)) };
        live.endpoint = { ...live.endpoint, spec: reverted };
        saveEndpoint(this.ws, reverted, live.endpoint.desired);
      }
      throw e;
    }
  }

  private async poolSpec(v: Variant, spec: EndpointSpec): Promise<PoolSpec> {
    const mv = getModel(this.ws, v.model);
    return {
      model: `${mv.name}@${mv.version}`,
      onnxPath: await this.ws.artifacts.localPath(mv.onnxSha),
      card: mv.card,
      device: spec.device,
      precision: spec.precision,
      batching: { maxBatch: spec.maxBatch, maxDelayMs: spec.maxDelayMs },
      maxInFlight: spec.maxInFlight,
      // models trained by Kennel keep the backbone's output tensor inside their graph
      ...(mv.card.source === 'kennel' ? { featureTensor: FEATURES_OUTPUT } : {}),
    };
  }

  private async waitReady(live: Live, pools: ReplicaPool[]): Promise<void> {
    const limit = Date.now() + (this.opts.readyWaitMs ?? 120_000);
    while (pools.some((p) => p.readyCount < p.desired || p.rollingOut)) {
      if (this.closed || this.live.get(live.endpoint.spec.name) !== live) return;
      const failed = pools.find((p) => p.failed);
      if (failed) throw cannotStart(live.endpoint.spec.name, failed.failed!, 422);
      if (Date.now() > limit) {
        throw Errors.NotReady(`The replicas of endpoint ${live.endpoint.spec.name} are not all ready after ${Math.round((this.opts.readyWaitMs ?? 120_000) / 1000)} s.`, 'See kennel endpoints describe for their state and events.');
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  private poolEvent(e: PoolEvent): void {
    this.event(e.endpoint, e.kind, `${e.variant}: ${e.message}`, { variant: e.variant, ...e.detail });
  }

  private event(endpoint: string, kind: string, message: string, detail: Record<string, unknown> = {}): void {
    const level = kind === 'replica_crashed' || kind === 'replica_unhealthy' || kind === 'rollout_failed' || kind === 'start_failed' ? 'warn' : 'info';
    this.opts.log[level]({ endpoint, event: kind, ...detail }, message);
    if (!this.closed && (this.live.has(endpoint) || kind === 'created' || kind === 'start_failed')) recordEvent(this.ws, endpoint, kind, message, detail);
  }

  private require(name: string): Live {
    const live = this.live.get(name);
    if (live) return live;
    getEndpoint(this.ws, name); // throws the 404
    throw Errors.NotRunning(`Endpoint ${name} is stored but not running.`, 'Restart the daemon: kennel down, then kennel up.');
  }

  /** Runs changes to one endpoint one after another. */
  private exclusive<T>(name: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.locks.get(name) ?? Promise.resolve();
    const next = prev.then(fn, fn);
    const settled = next.catch(() => {});
    this.locks.set(name, settled);
    void settled.then(() => {
      if (this.locks.get(name) === settled) this.locks.delete(name);
    });
    return next;
  }
}

function poolSpecChanged(a: PoolSpec, b: PoolSpec): boolean {
  return a.model !== b.model || a.device !== b.device || a.precision !== b.precision || a.batching.maxBatch !== b.batching.maxBatch || a.batching.maxDelayMs !== b.batching.maxDelayMs || a.onnxPath !== b.onnxPath;
}

function describeChange(a: EndpointSpec, b: EndpointSpec): string {
  const parts: string[] = [];
  for (const v of b.variants) {
    const old = a.variants.find((x) => x.name === v.name);
    if (!old) parts.push(`added ${v.name}=${v.model} (weight ${v.weight})`);
    else {
      if (old.model !== v.model) parts.push(`${v.name} ${old.model} -> ${v.model}`);
      if (old.weight !== v.weight) parts.push(`${v.name} weight ${old.weight} -> ${v.weight}`);
    }
  }
  for (const v of a.variants) if (!b.variants.some((x) => x.name === v.name)) parts.push(`removed ${v.name}`);
  if (JSON.stringify(a.capture) !== JSON.stringify(b.capture)) parts.push(b.capture ? `capture ${b.capture.percent}% of requests (${b.capture.retentionDays} days, at most ${b.capture.maxRows} rows${b.capture.images ? ', with images' : ''})` : 'capture stopped');
  if (JSON.stringify(a.shadow) !== JSON.stringify(b.shadow)) parts.push(b.shadow ? `shadow ${b.shadow.model} on ${b.shadow.percent}% of requests (${b.shadow.instances} replica(s))` : 'shadow stopped');
  for (const k of Object.keys(b) as Array<keyof EndpointSpec>) {
    if (k !== 'variants' && k !== 'name' && k !== 'shadow' && k !== 'capture' && a[k] !== b[k]) parts.push(`${k} ${String(a[k])} -> ${String(b[k])}`);
  }
  return parts.join(', ') || 'no change';
}
