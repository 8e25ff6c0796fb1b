import { spawn } from 'node:child_process';
import { closeSync, fchmodSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { Errors, KennelError } from '../../core/index.js';
import { EVENT_QUEUE_DEFAULTS } from '../../functions/index.js';
import { adminRequest, adminUrl, checkHttpLimits, clearState, daemonPaths, dataPlaneUrl, DEFAULT_HTTP_LIMITS, isAlive, readState, startDaemon, type Daemon, type DaemonState, type HttpLimits } from '../../server/index.js';
import { defaultHome } from '../../store/index.js';
import { emit, jsonCommand, runAction } from '../output.js';
import { number, queueOf } from '../options.js';

interface UpOptions {
  port: number;
  adminPort: number;
  host: string;
  headerTimeout: number;
  requestTimeout: number;
  keepAliveTimeout: number;
  maxConnectionsPerClient: number;
  detach?: boolean;
  json?: boolean;
  maxQueuedEvents: number;
  maxQueuedTotal: number;
  maxQueuedMib: number;
  queue?: string;
}

const httpLimitsOf = (opts: UpOptions): HttpLimits => ({
  headersTimeoutMs: Math.round(opts.headerTimeout * 1000),
  requestTimeoutMs: Math.round(opts.requestTimeout * 1000),
  keepAliveTimeoutMs: Math.round(opts.keepAliveTimeout * 1000),
  maxConnectionsPerClient: opts.maxConnectionsPerClient,
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function answers(url: string): Promise<boolean> {
  try {
    return (await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(2000) })).ok;
  } catch {
    return false;
  }
}

/**
 * Starts `kennel up` again as a detached process (its own process group) and waits until both
 * ports answer. A daemon already running for this workspace is reported, not an error, so a
 * setup script can run twice.
 */
async function startDetached(home: string, opts: UpOptions): Promise<DaemonState & { log: string; alreadyRunning: boolean }> {
  const paths = daemonPaths(home);
  mkdirSync(paths.dir, { recursive: true, mode: 0o700 });
  const running = readState(home);
  if (running && isAlive(running.pid)) return { ...running, log: paths.log, alreadyRunning: true };
  const log = openSync(paths.log, 'a', 0o600);
  fchmodSync(log, 0o600); // also a log left by an older Kennel
  const args = [
    ...process.execArgv,
    process.argv[1]!,
    'up',
    ...['--port', String(opts.port), '--admin-port', String(opts.adminPort), '--host', opts.host],
    ...['--header-timeout', String(opts.headerTimeout), '--request-timeout', String(opts.requestTimeout), '--keep-alive-timeout', String(opts.keepAliveTimeout), '--max-connections-per-client', String(opts.maxConnectionsPerClient)],
    ...['--max-queued-events', String(opts.maxQueuedEvents), '--max-queued-total', String(opts.maxQueuedTotal), '--max-queued-mib', String(opts.maxQueuedMib)],
    ...(opts.queue ? ['--queue', opts.queue] : []),
  ];
  const child = spawn(process.execPath, args, { detached: true, stdio: ['ignore', log, log], env: { ...process.env, KENNEL_HOME: home } });
  closeSync(log);
  let exited: number | null | undefined;
  child.on('exit', (code) => (exited = code));
  child.unref();
  const limit = Date.now() + 60_000;
  for (;;) {
    const state = readState(home);
    if (state && state.pid === child.pid && (await answers(dataPlaneUrl(state))) && (await answers(adminUrl(state)))) return { ...state, log: paths.log, alreadyRunning: false };
    if (exited !== undefined) {
      const tail = readFileSync(paths.log, 'utf8').trim().split('\n').slice(-5).join('\n');
      const reason = /error: (.*?)\.?$/m.exec(tail)?.[1]; // the sentence gets its full stop below
      throw Errors.DaemonFailed(`The daemon exited while starting${reason ? `: ${reason}` : ` (code ${exited})`}.`, `See its log: ${paths.log}`);
    }
    if (Date.now() > limit) throw Errors.DaemonFailed('The daemon did not answer within 60 s.', `See its log: ${paths.log}`, 504);
    await sleep(100);
  }
}

export function registerDaemon(program: Command): void {
  // not a jsonCommand: in the foreground it serves until stopped and prints nothing on stdout
  program
    .command('up')
    .description('Start the Kennel daemon: the data plane (invocations, /metrics) and the admin API, serving every endpoint. Runs in the foreground unless --detach.')
    .option('--port <port>', 'data-plane port', number('--port', { int: true, min: 0, max: 65535 }), 8080)
    .option('--admin-port <port>', 'admin API port', number('--admin-port', { int: true, min: 0, max: 65535 }), 8081)
    .option('--host <host>', 'interface both ports bind to', '127.0.0.1')
    .option('--header-timeout <s>', 'seconds a client has to send its request headers (both ports; 408 after)', number('--header-timeout', { min: 0.001 }), DEFAULT_HTTP_LIMITS.headersTimeoutMs / 1000)
    .option('--request-timeout <s>', 'seconds a client has to send a whole request, body included (408 after)', number('--request-timeout', { min: 0.001 }), DEFAULT_HTTP_LIMITS.requestTimeoutMs / 1000)
    .option('--keep-alive-timeout <s>', 'seconds an idle keep-alive connection stays open', number('--keep-alive-timeout', { min: 0.001 }), DEFAULT_HTTP_LIMITS.keepAliveTimeoutMs / 1000)
    .option('--max-connections-per-client <n>', 'open connections per client address (429 beyond)', number('--max-connections-per-client', { int: true, min: 1 }), DEFAULT_HTTP_LIMITS.maxConnectionsPerClient)
    .option('--max-queued-events <n>', 'asynchronous (Event) invocations stored per function, waiting, running or failed, before 429', number('--max-queued-events', { int: true, min: 1 }), EVENT_QUEUE_DEFAULTS.maxEventsPerFunction)
    .option('--max-queued-total <n>', 'asynchronous invocations stored for all functions before 429', number('--max-queued-total', { int: true, min: 1 }), EVENT_QUEUE_DEFAULTS.maxEvents)
    .option('--max-queued-mib <n>', 'payload MiB of asynchronous invocations stored for all functions before 429', number('--max-queued-mib', { int: true, min: 1 }), EVENT_QUEUE_DEFAULTS.maxBytes / 1024 ** 2)
    .option('--queue <url>', "Redis URL (redis://HOST:PORT) for the endpoints' asynchronous requests, kept in BullMQ queues there instead of the workspace's database (default $KENNEL_QUEUE)")
    .option('--detach', 'run in the background (pid and log in KENNEL_HOME/daemon/); returns once both ports answer, or at once when the daemon already runs')
    .option('--json', 'print JSON (with --detach)')
    .action((opts: UpOptions) =>
      runAction(async (signal) => {
        const home = defaultHome();
        checkHttpLimits(httpLimitsOf(opts)); // before a detached start, so the error is printed here
        if (opts.detach) {
          const s = await startDetached(home, opts);
          emit(opts, s, () => `Kennel daemon ${s.alreadyRunning ? 'already running' : 'started'} (pid ${s.pid})\n  data plane  ${dataPlaneUrl(s)}\n  admin API   ${adminUrl(s)}\n  log         ${s.log}\nstop it with: kennel down`);
          return;
        }
        const events = { maxEventsPerFunction: opts.maxQueuedEvents, maxEvents: opts.maxQueuedTotal, maxBytes: opts.maxQueuedMib * 1024 ** 2 };
        // listening for SIGTERM before the daemon announces itself (its state file): a stop asked at
        // once, or twice, must close it, never meet Node's default (death by signal)
        let daemon: Daemon | undefined;
        let stopAsked = false;
        const stop = () => {
          stopAsked = true;
          void daemon?.close();
        };
        process.on('SIGTERM', stop);
        signal.addEventListener('abort', stop);
        daemon = await startDaemon({ home, host: opts.host, port: opts.port, adminPort: opts.adminPort, events, httpLimits: httpLimitsOf(opts), asyncInference: { queue: queueOf(opts.queue) } });
        if (stopAsked) void daemon.close();
        process.stderr.write(`Kennel daemon (pid ${process.pid}): data plane ${dataPlaneUrl(daemon.state)}, admin API ${adminUrl(daemon.state)}; Ctrl-C stops it\n`);
        await daemon.stopped;
      }),
    );

  jsonCommand(program.command('down').description('Stop the running Kennel daemon: in-flight requests finish, replicas stop.'), {
    action: async (): Promise<{ stopped: boolean; pid?: number }> => {
      const home = defaultHome();
      const state = readState(home);
      if (!state || !isAlive(state.pid)) {
        if (state) clearState(home, state.pid);
        return { stopped: false };
      }
      try {
        await adminRequest(home, 'POST', '/v1/shutdown');
      } catch {
        process.kill(state.pid, 'SIGTERM'); // the admin API does not answer: ask the process itself
      }
      const limit = Date.now() + 60_000;
      while (isAlive(state.pid)) {
        if (Date.now() > limit) {
          process.kill(state.pid, 'SIGKILL');
          clearState(home, state.pid);
          break;
        }
        await sleep(100);
      }
      return { stopped: true, pid: state.pid };
    },
    human: (r) => (r.stopped ? `Kennel daemon (pid ${r.pid}) stopped` : 'no Kennel daemon is running'),
  });
}
