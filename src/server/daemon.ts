import type { AddressInfo } from 'node:net';
import { pino, type Logger } from 'pino';
import { LogBook } from '../console/index.js';
import { Errors, KennelError } from '../core/index.js';
import { DriftMonitor, latestDriftPerModel } from '../housekeeping/index.js';
import { endpointClientFor, FunctionGateway, type EventQueueOptions } from '../functions/index.js';
import { AsyncInference, DEFAULT_MAX_IMAGE_BYTES, ServingRuntime, type AsyncInferenceOptions, type PoolTimings } from '../serving/index.js';
import { openWorkspace } from '../store/index.js';
import { buildAdmin } from './admin.js';
import { buildDataPlane } from './dataplane.js';
import { checkHttpLimits, DEFAULT_HTTP_LIMITS, type HttpLimits } from './http-limits.js';
import { ServingMetrics } from './metrics.js';
import { clearState, ensureAdminToken, isAlive, readState, writeState, type DaemonState } from './state.js';

export interface DaemonOptions {
  home: string;
  /** interface both ports bind to; loopback unless asked otherwise */
  host?: string;
  /** data-plane port (0: any free port) */
  port?: number;
  adminPort?: number;
  log?: Logger;
  maxImageBytes?: number;
  timings?: PoolTimings;
  /** bounds and retry timings of the functions' asynchronous-invocation queue */
  events?: EventQueueOptions;
  /** bounds and timings of the endpoints' asynchronous inference queue, and its Redis URL (`queue`) when not the workspace's database */
  asyncInference?: AsyncInferenceOptions;
  /** timeouts and the per-client connection cap of both ports (default DEFAULT_HTTP_LIMITS) */
  httpLimits?: Partial<HttpLimits>;
  /** how often endpoints that capture requests are checked for drift (default KENNEL_DRIFT_INTERVAL_S seconds, else 10 minutes) */
  driftIntervalMs?: number;
}

export interface Daemon {
  state: DaemonState;
  runtime: ServingRuntime;
  gateway: FunctionGateway;
  asyncInference: AsyncInference;
  /** the drift schedule (tick() runs a round now) */
  drift: DriftMonitor;
  /** resolves when the daemon has stopped (after close() or POST /v1/shutdown) */
  stopped: Promise<void>;
  close(): Promise<void>;
}

/** The daemon's logger: JSON lines on stdout, and into `book` (the console's logs view) when given. */
export function daemonLogger(book?: LogBook): Logger {
  const level = process.env.KENNEL_LOG_LEVEL ?? 'info';
  if (!book) return pino({ level, base: { pid: process.pid } });
  return pino({ level, base: { pid: process.pid } }, pino.multistream([{ level, stream: process.stdout }, { level, stream: book }]));
}

/**
 * Starts the Kennel daemon in this process: the data plane and the admin API (both fastify),
 * every stored endpoint with the replicas it had, and the function gateway with its provisioned
 * instances. One daemon per KENNEL_HOME.
 */
export async function startDaemon(opts: DaemonOptions): Promise<Daemon> {
  // a logger passed in (tests, embedding) is not captured: the logs view then shows nothing
  const logs = new LogBook();
  const log = opts.log ?? daemonLogger(logs);
  const host = opts.host ?? '127.0.0.1';
  const running = readState(opts.home);
  if (running && running.pid !== process.pid && isAlive(running.pid)) {
    throw Errors.Conflict(`A Kennel daemon is already running for ${opts.home} (pid ${running.pid}, port ${running.port}).`, 'Stop it with kennel down, or use another KENNEL_HOME.');
  }
  const httpLimits = checkHttpLimits({ ...DEFAULT_HTTP_LIMITS, ...opts.httpLimits });
  const ws = openWorkspace(opts.home);
  const token = ensureAdminToken(ws.home);
  logs.addSecrets(token);
  let runtime: ServingRuntime | undefined;
  const metrics = new ServingMetrics(
    () => runtime?.load() ?? [],
    // per endpoint: the newest check's numbers, alarmed while any of its models' newest check is
    () =>
      (runtime?.list() ?? []).flatMap((e) => {
        const latest = e.spec.capture ? latestDriftPerModel(ws, e.name) : [];
        return latest.length ? [{ ...latest[0]!, alarm: latest.some((r) => r.alarm) }] : [];
      }),
  );
  // the backlog is first read once a pool is tracked, after asyncInference is built (runtime.start() or a create)
  runtime = new ServingRuntime(ws, { log, hooks: metrics.hooks, timings: opts.timings, backlog: (endpoint) => asyncInference.depth(endpoint) });
  const startedAt = new Date().toISOString();
  const driftIntervalMs = opts.driftIntervalMs ?? (Number(process.env.KENNEL_DRIFT_INTERVAL_S) > 0 ? Number(process.env.KENNEL_DRIFT_INTERVAL_S) * 1000 : 600_000);
  const drift = new DriftMonitor(ws, log, driftIntervalMs, (name) => runtime?.flushCapture(name));

  let resolveStopped!: () => void;
  const stopped = new Promise<void>((r) => (resolveStopped = r));
  let closing: Promise<void> | undefined;
  const close = (): Promise<void> =>
    (closing ??= (async () => {
      log.info('daemon stopping');
      await dataPlane.close(); // stops accepting and waits for in-flight invocations
      await gateway.close();
      drift.close();
      await asyncInference.close();
      await runtime!.close();
      await admin.close();
      clearState(ws.home);
      ws.close();
      log.info('daemon stopped');
      resolveStopped();
    })());

  const gateway = new FunctionGateway({ ws, endpoints: endpointClientFor(runtime, opts.maxImageBytes), registry: metrics.registry, events: opts.events });
  // filled in once both listen; status() may be read before (the console reads home at registration)
  const ports = { port: 0, adminPort: 0 };
  let asyncInference: AsyncInference;
  try {
    asyncInference = await AsyncInference.open(ws, runtime.router, log, { maxImageBytes: opts.maxImageBytes, ...opts.asyncInference });
  } catch (e) {
    // Redis cannot be reached: nothing has started yet but the runtime's timers
    drift.close();
    await runtime.close();
    ws.close();
    throw e;
  }
  const dataPlane = buildDataPlane(runtime, metrics, { log, ws, gateway, maxImageBytes: opts.maxImageBytes, httpLimits, asyncInference });
  const admin = buildAdmin(runtime, {
    log,
    token,
    ws,
    status: () => ({ pid: process.pid, home: ws.home, host, ...ports, startedAt, endpoints: runtime!.list().length }),
    shutdown: () => void close(),
    metrics: () => metrics.invocationSamples(),
    logs,
    httpLimits,
  });
  try {
    await dataPlane.listen({ host, port: opts.port ?? 8080 });
    await admin.listen({ host, port: opts.adminPort ?? 8081 });
  } catch (e) {
    drift.close();
    await Promise.all([dataPlane.close(), admin.close(), runtime.close(), asyncInference.close()]);
    ws.close();
    const err = e as NodeJS.ErrnoException;
    const port = (err as { port?: number }).port;
    if (err.code === 'EADDRINUSE') throw Errors.Conflict(`${port === undefined ? 'A port' : `Port ${port}`} is already in use.`, 'Pick other ports with --port and --admin-port.');
    throw e;
  }
  ports.port = addressOf(dataPlane);
  ports.adminPort = addressOf(admin);
  await runtime.start();
  await gateway.start(); // provisioned instances, then function definitions re-read every 2 s
  await asyncInference.start(); // requests left running by a crash are handed back first
  const state: DaemonState = { pid: process.pid, host, ...ports, startedAt, maxImageBytes: opts.maxImageBytes ?? DEFAULT_MAX_IMAGE_BYTES };
  writeState(ws.home, state);
  const { pid: _pid, ...started } = state; // every line carries pid already
  log.info(started, 'daemon started');
  return { state, runtime, gateway, asyncInference, drift, stopped, close };
}

function addressOf(app: { server: { address(): unknown } }): number {
  return (app.server.address() as AddressInfo | null)?.port ?? 0;
}
