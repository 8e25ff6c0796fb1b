import type { AddressInfo } from 'node:net';
import { pino, type Logger } from 'pino';
import { KennelError } from '../core/errors.js';
import { endpointClientFor, FunctionGateway } from '../functions/index.js';
import { ServingRuntime, type PoolTimings } from '../serving/index.js';
import { openWorkspace } from '../store/index.js';
import { buildAdmin } from './admin.js';
import { buildDataPlane } from './dataplane.js';
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
}

export interface Daemon {
  state: DaemonState;
  runtime: ServingRuntime;
  gateway: FunctionGateway;
  /** resolves when the daemon has stopped (after close() or POST /v1/shutdown) */
  stopped: Promise<void>;
  close(): Promise<void>;
}

export function daemonLogger(): Logger {
  return pino({ level: process.env.KENNEL_LOG_LEVEL ?? 'info', base: { pid: process.pid } });
}

/**
 * Starts the Kennel daemon in this process: the data plane and the admin API (both fastify),
 * every stored endpoint with the replicas it had, and the function gateway with its provisioned
 * instances. One daemon per KENNEL_HOME.
 */
export async function startDaemon(opts: DaemonOptions): Promise<Daemon> {
  const log = opts.log ?? daemonLogger();
  const host = opts.host ?? '127.0.0.1';
  const running = readState(opts.home);
  if (running && running.pid !== process.pid && isAlive(running.pid)) {
    throw new KennelError(`A Kennel daemon is already running for ${opts.home} (pid ${running.pid}, port ${running.port}).`, 'Stop it with kennel down, or use another KENNEL_HOME.', 409, 'conflict');
  }
  const ws = openWorkspace(opts.home);
  const token = ensureAdminToken(ws.home);
  let runtime: ServingRuntime | undefined;
  const metrics = new ServingMetrics(() => runtime?.load() ?? []);
  runtime = new ServingRuntime(ws, { log, hooks: metrics.hooks, timings: opts.timings });
  const startedAt = new Date().toISOString();

  let resolveStopped!: () => void;
  const stopped = new Promise<void>((r) => (resolveStopped = r));
  let closing: Promise<void> | undefined;
  const close = (): Promise<void> =>
    (closing ??= (async () => {
      log.info('daemon stopping');
      await dataPlane.close(); // stops accepting and waits for in-flight invocations
      await gateway.close();
      await runtime!.close();
      await admin.close();
      clearState(ws.home);
      ws.close();
      log.info('daemon stopped');
      resolveStopped();
    })());

  const gateway = new FunctionGateway({ ws, endpoints: endpointClientFor(runtime, opts.maxImageBytes), registry: metrics.registry });
  // filled in once both listen; status() may be read before (the console reads home at registration)
  const ports = { port: 0, adminPort: 0 };
  const dataPlane = buildDataPlane(runtime, metrics, { log, ws, gateway, maxImageBytes: opts.maxImageBytes });
  const admin = buildAdmin(runtime, {
    log,
    token,
    status: () => ({ pid: process.pid, home: ws.home, host, ...ports, startedAt, endpoints: runtime!.list().length }),
    shutdown: () => void close(),
    metrics: () => metrics.text(),
  });
  try {
    await dataPlane.listen({ host, port: opts.port ?? 8080 });
    await admin.listen({ host, port: opts.adminPort ?? 8081 });
  } catch (e) {
    await Promise.all([dataPlane.close(), admin.close(), runtime.close()]);
    ws.close();
    const err = e as NodeJS.ErrnoException;
    const port = (err as { port?: number }).port;
    if (err.code === 'EADDRINUSE') throw new KennelError(`${port === undefined ? 'A port' : `Port ${port}`} is already in use.`, 'Pick other ports with --port and --admin-port.', 409, 'conflict');
    throw e;
  }
  ports.port = addressOf(dataPlane);
  ports.adminPort = addressOf(admin);
  await runtime.start();
  await gateway.start(); // provisioned instances, then function definitions re-read every 2 s
  const state: DaemonState = { pid: process.pid, host, ...ports, startedAt };
  writeState(ws.home, state);
  const { pid: _pid, ...started } = state; // every line carries pid already
  log.info(started, 'daemon started');
  return { state, runtime, gateway, stopped, close };
}

function addressOf(app: { server: { address(): unknown } }): number {
  return (app.server.address() as AddressInfo | null)?.port ?? 0;
}
