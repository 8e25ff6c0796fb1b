import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { existsSync } from 'node:fs';
import { Errors, KennelError, writeFileAtomic } from '../core/index.js';
import { fetchImage, type SafeFetchOptions } from '../net/index.js';
import { appendAudit, Authorizer, forbidden, ThrottledError } from '../security/index.js';
import type { Workspace } from '../store/index.js';
import type { Registry } from 'prom-client';
import { EventQueue, type EventQueueOptions } from './events.js';
import { BuiltinInstance, WorkerInstance, timedOut, type Instance } from './instances.js';
import { FunctionMetrics } from './metrics.js';
import { functionForRoute, getFunction, listFunctions, BUILTIN_CLASSIFY, type FunctionDefinition } from './store.js';
import type { EndpointClient, ProxyResponse } from './types.js';
import type { ParentServices } from './worker-protocol.js';

export interface GatewayOptions {
  ws: Workspace;
  endpoints: EndpointClient;
  /** checks what execution roles may do; default: one over the same workspace */
  authorizer?: Authorizer;
  /** how the {"url"} of events is fetched (tests allow their local server here) */
  fetch?: Omit<SafeFetchOptions, 'signal'>;
  /** where metrics go (the daemon's /metrics registry) */
  registry?: Registry;
  /** the concurrency limit of functions without reserved concurrency, default 100 */
  unreservedConcurrency?: number;
  /** on-demand instances idle this long are stopped, default 5 minutes */
  idleTimeoutMs?: number;
  /** how often definitions are re-read and provisioned instances topped up, default 2 s */
  syncIntervalMs?: number;
  /** bounds and retry timings of the asynchronous (Event) invocation queue */
  events?: EventQueueOptions;
}

export interface InvokeOptions {
  requestId?: string;
}

export interface Invocation {
  function: string;
  requestId: string;
  /** the handler's own return value (the Lambda Invoke API answers with it as is) */
  result: unknown;
  response: ProxyResponse;
  /** true when this call had to start an instance */
  coldStart: boolean;
  /** instance start time, for cold starts */
  initMs?: number;
  durationMs: number;
}

const ENDPOINT_NAME = /^[a-z0-9][a-z0-9._-]{0,63}$/;

/** The instances of one revision of one function. */
class Pool {
  readonly idle: Array<{ instance: Instance; since: number }> = [];
  /** executions in progress */
  active = 0;
  /** instances started or starting, busy or idle */
  alive = 0;
  retired = false;
  private filling?: Promise<void>;

  constructor(
    readonly def: FunctionDefinition,
    private readonly startInstance: () => Promise<Instance>,
    private readonly onProvisioned: (ms: number) => void,
  ) {}

  async start(): Promise<Instance> {
    this.alive++;
    try {
      return await this.startInstance();
    } catch (e) {
      this.alive--;
      throw e;
    }
  }

  release(instance: Instance): void {
    if (instance.broken || this.retired) {
      this.alive--;
      void instance.close();
    } else this.idle.push({ instance, since: Date.now() });
  }

  /** Stops on-demand instances idle too long, and starts instances up to the provisioned count. */
  maintain(idleTimeoutMs: number): Promise<void> {
    const t = Date.now();
    for (let i = this.idle.length - 1; i >= 0 && this.alive > this.def.provisionedConcurrency; i--) {
      if (t - this.idle[i]!.since < idleTimeoutMs) continue;
      const { instance } = this.idle.splice(i, 1)[0]!;
      this.alive--;
      void instance.close();
    }
    if (!this.filling && this.alive < this.def.provisionedConcurrency) {
      const missing = this.def.provisionedConcurrency - this.alive;
      this.filling = Promise.all(
        Array.from({ length: missing }, async () => {
          const started = performance.now();
          // a handler that cannot start is retried at the next sync; callers meanwhile get its
          // error from their own (cold) start, so one broken function never stops the gateway
          const instance = await this.start().catch(() => undefined);
          if (!instance) return;
          this.onProvisioned(performance.now() - started);
          this.release(instance);
        }),
      )
        .then(() => undefined)
        .finally(() => (this.filling = undefined));
    }
    return this.filling ?? Promise.resolve();
  }

  retire(): void {
    this.retired = true;
    for (const { instance } of this.idle.splice(0)) {
      this.alive--;
      void instance.close();
    }
  }
}

/**
 * Runs functions: per function a pool of instances, capped at its reserved concurrency (excess
 * calls get 429 with Retry-After at once: never queued, never dropped), with its provisioned
 * instances started ahead of calls. Asynchronous invocations go through `events`, a durable
 * queue that runs them within the same limits. Definitions are read from the workspace, so
 * functions created or changed from the CLI take effect in a running daemon.
 */
export class FunctionGateway {
  readonly metrics: FunctionMetrics;
  /** asynchronous invocations: stored before they are acknowledged, run in the background */
  readonly events: EventQueue;
  private readonly pools = new Map<string, Pool>();
  private readonly authorizer: Authorizer;
  private timer?: NodeJS.Timeout;

  constructor(private readonly opts: GatewayOptions) {
    this.metrics = new FunctionMetrics(opts.registry);
    this.authorizer = opts.authorizer ?? new Authorizer(opts.ws);
    this.events = new EventQueue(opts.ws, { run: (name, event, requestId) => this.invoke(name, event, { requestId }), concurrencyLimit: (def) => this.concurrencyLimit(def) }, this.metrics, opts.events);
  }

  /** Starts provisioned instances (resolves when they are warm) and keeps them topped up; starts running queued events. */
  async start(): Promise<void> {
    await this.sync();
    this.timer ??= setInterval(() => void this.sync().catch(() => {}), this.opts.syncIntervalMs ?? 2000);
    this.timer.unref();
    this.events.start();
  }

  /** Re-reads definitions: new revisions get fresh pools, deleted functions lose theirs. */
  async sync(): Promise<void> {
    const defs = listFunctions(this.opts.ws);
    const names = new Set(defs.map((d) => d.name));
    for (const [name, pool] of this.pools) {
      if (!names.has(name)) {
        pool.retire();
        this.pools.delete(name);
      }
    }
    await Promise.all(defs.map((d) => this.poolFor(d).maintain(this.opts.idleTimeoutMs ?? 300_000)));
    for (const [name, pool] of this.pools) this.metrics.warmInstances.set({ function: name }, pool.idle.length);
  }

  /** The function an HTTP API route (e.g. /v1/classify) is mapped to. */
  functionForRoute(route: string): string | undefined {
    return functionForRoute(this.opts.ws, route);
  }

  async invoke(name: string, event: unknown, opts: InvokeOptions = {}): Promise<Invocation> {
    const def = getFunction(this.opts.ws, name);
    const pool = this.poolFor(def);
    const labels = { function: name };
    const limit = this.concurrencyLimit(def);
    if (pool.active >= limit) {
      this.metrics.throttles.inc(labels);
      throw new ThrottledError(
        limit === 0 ? `Function ${name} has reserved concurrency 0, so it is switched off.` : `Function ${name} is at its concurrency limit (${limit} concurrent executions).`,
        `Retry after 1 s, or raise the limit: kennel functions update ${name} --reserved-concurrency ${Math.max(1, limit * 2)}.`,
        1,
      );
    }
    pool.active++;
    this.metrics.concurrent.inc(labels);
    const requestId = opts.requestId ?? randomUUID();
    const started = performance.now();
    const ac = new AbortController();
    let instance: Instance | undefined;
    let coldStart = false;
    let initMs: number | undefined;
    let outcome = 'error';
    try {
      const warm = pool.idle.pop();
      if (warm) instance = warm.instance;
      else {
        coldStart = true;
        this.metrics.coldStarts.inc(labels);
        instance = await pool.start();
        initMs = performance.now() - started;
        this.metrics.initDuration.observe({ function: name, kind: 'on_demand' }, initMs / 1000);
      }
      const timer = setTimeout(() => ac.abort(timedOut(def)), def.timeoutMs);
      let raw: unknown;
      try {
        raw = await instance.invoke(event, { requestId, services: this.services(def, requestId, ac.signal), signal: ac.signal, deadline: Date.now() + def.timeoutMs });
      } finally {
        clearTimeout(timer);
      }
      const response = toProxyResponse(def, raw);
      outcome = 'ok';
      const durationMs = performance.now() - started;
      return { function: name, requestId, result: raw, response, coldStart, initMs, durationMs };
    } catch (e) {
      if (Errors.FunctionTimeout.is(e)) outcome = 'timeout';
      throw e;
    } finally {
      pool.active--;
      if (instance) pool.release(instance);
      this.metrics.concurrent.dec(labels);
      this.metrics.invocations.inc({ function: name, outcome });
      this.metrics.duration.observe({ function: name, cold_start: String(coldStart) }, (performance.now() - started) / 1000);
      this.metrics.warmInstances.set(labels, pool.idle.length);
    }
  }

  /** Stops running queued events (those still running after a grace period run again at the next start), then every instance. */
  async close(): Promise<void> {
    await this.events.close();
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    for (const pool of this.pools.values()) pool.retire();
    this.pools.clear();
  }

  private concurrencyLimit(def: FunctionDefinition): number {
    return def.reservedConcurrency ?? this.opts.unreservedConcurrency ?? 100;
  }

  private poolFor(def: FunctionDefinition): Pool {
    const existing = this.pools.get(def.name);
    if (existing && existing.def.revision === def.revision) return existing;
    existing?.retire();
    const pool = new Pool(def, () => this.startInstance(def), (ms) => this.metrics.initDuration.observe({ function: def.name, kind: 'provisioned' }, ms / 1000));
    this.pools.set(def.name, pool);
    return pool;
  }

  private async startInstance(def: FunctionDefinition): Promise<Instance> {
    if (def.handler === BUILTIN_CLASSIFY) return new BuiltinInstance(def);
    return WorkerInstance.start(def, await this.modulePath(def));
  }

  /** The bundled handler as an .mjs file (artifacts have no extension, and ESM needs one). */
  private async modulePath(def: FunctionDefinition): Promise<string> {
    const path = join(this.opts.ws.home, 'functions', `${def.handlerSha}.mjs`);
    if (!existsSync(path)) writeFileAtomic(path, await this.opts.ws.artifacts.get(def.handlerSha!));
    return path;
  }

  /**
   * What a handler may ask of the gateway. Endpoint calls are authorised here, against the
   * function's execution role (never inside the handler), and audited.
   */
  private services(def: FunctionDefinition, requestId: string, signal: AbortSignal): ParentServices {
    const { ws, endpoints } = this.opts;
    return {
      invokeEndpoint: async (endpoint, body, contentType, opts) => {
        if (typeof endpoint !== 'string' || !ENDPOINT_NAME.test(endpoint)) throw Errors.InvalidRequest(`"${String(endpoint).slice(0, 64)}" is not an endpoint name.`);
        if (!(body instanceof Uint8Array) || typeof contentType !== 'string') throw Errors.InvalidRequest('An endpoint call needs the image bytes (Uint8Array) and their content type.');
        const resource = `endpoint/${endpoint}`;
        const started = performance.now();
        let status = 200;
        try {
          if (this.authorizer.decide(def.role, 'endpoint:Invoke', resource) !== 'allow') throw forbidden(def.role, 'endpoint:Invoke', resource);
          return await endpoints.invoke(endpoint, body, contentType, { topK: opts?.topK, requestId, signal });
        } catch (e) {
          status = e instanceof KennelError ? e.status : 502;
          throw e;
        } finally {
          appendAudit(ws, { plane: 'function', principal: def.role, action: 'endpoint:Invoke', resource, status, latencyMs: performance.now() - started, requestId, detail: { function: def.name, bytes: body.length } });
        }
      },
      fetchImage: async (url) => {
        if (typeof url !== 'string') throw Errors.InvalidRequest('"url" must be a string.');
        const got = await fetchImage(url, { ...this.opts.fetch, signal });
        return { bytes: got.bytes, contentType: got.contentType };
      },
    };
  }
}

const DROPPED_HEADERS = new Set(['content-length', 'transfer-encoding', 'connection']);

/** A handler's return value as a proxy response: {statusCode, headers, body}, or any value as 200 JSON. */
function toProxyResponse(def: FunctionDefinition, raw: unknown): ProxyResponse {
  if (!raw || typeof raw !== 'object' || !('statusCode' in raw)) {
    return { statusCode: 200, headers: { 'content-type': 'application/json' }, body: JSON.stringify(raw ?? null) };
  }
  const r = raw as { statusCode: unknown; headers?: unknown; body?: unknown; isBase64Encoded?: unknown };
  if (typeof r.statusCode !== 'number' || !Number.isInteger(r.statusCode) || r.statusCode < 100 || r.statusCode > 599) {
    throw Errors.FunctionError(`Function ${def.name} returned an invalid statusCode (${String(r.statusCode).slice(0, 20)}).`, 'Return {statusCode: 200, headers: {...}, body: "..."}.');
  }
  const headers: Record<string, string> = {};
  if (r.headers && typeof r.headers === 'object') {
    for (const [k, v] of Object.entries(r.headers)) if (!DROPPED_HEADERS.has(k.toLowerCase()) && v !== undefined && v !== null) headers[k.toLowerCase()] = String(v);
  }
  const body = typeof r.body === 'string' ? r.body : r.body === undefined ? '' : JSON.stringify(r.body);
  if (typeof r.body === 'object' && r.body !== null) headers['content-type'] ??= 'application/json';
  return { statusCode: r.statusCode, headers, body, isBase64Encoded: r.isBase64Encoded === true };
}
