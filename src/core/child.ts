/**
 * One child abstraction for everything Kennel runs beside its own thread: replicas and local
 * workers (fork()ed processes), function handlers and ORT sessions (worker threads). Each has the
 * same lifecycle: `start()` spawns and resolves with the child's first message (its `ready`, or
 * the reason it cannot start), `send()` talks to it, `close(force)` asks it to finish (the
 * `stop` message) and kills it after a grace period, or at once with `force`.
 */
import { fork, type ChildProcess, type StdioOptions } from 'node:child_process';
import { existsSync } from 'node:fs';
import { EventEmitter } from 'node:events';
import type { Readable, Writable } from 'node:stream';
import { Worker, type ResourceLimits } from 'node:worker_threads';

/** An EventEmitter whose events and listener signatures are those of the interface `L` (like BullMQ's WorkerListener). */
export class TypedEmitter<L extends { [K in keyof L]: (...args: any[]) => void }> extends EventEmitter {
  override on<U extends keyof L & string>(event: U, listener: L[U]): this {
    return super.on(event, listener);
  }

  override once<U extends keyof L & string>(event: U, listener: L[U]): this {
    return super.once(event, listener);
  }

  override off<U extends keyof L & string>(event: U, listener: L[U]): this {
    return super.off(event, listener);
  }

  override emit<U extends keyof L & string>(event: U, ...args: Parameters<L[U]>): boolean {
    return super.emit(event, ...args);
  }
}

/** How a child ended: a process's exit code or signal, a thread's exit code. */
export interface ChildExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface ChildListener<Out> {
  /** every message of the child, its first (the one `start()` resolves with) included */
  message(m: Out): void;
  /** the child could not be spawned, or a thread threw (an uncaught error, out of memory); `exit` follows. Optional. */
  error(e: Error): void;
  /** the child ended; no event follows */
  exit(info: ChildExit): void;
}

export interface ChildOptions<In> {
  /** the entry module, given with its compiled name next to the caller: `new URL('./x.js', import.meta.url)` */
  entry: URL;
  /** 'process' (child_process.fork: its own heap and crash domain) or 'thread' (a worker thread) */
  kind: 'process' | 'thread';
  /** a process's arguments after the entry */
  args?: string[];
  /** a thread's workerData */
  data?: unknown;
  env?: NodeJS.ProcessEnv;
  /** a process's stdio; it must include 'ipc'. Default: no stdin, output to this process's stderr */
  stdio?: StdioOptions;
  /** a process's messages: 'json' (default) or 'advanced' (structured clone: buffers travel as bytes) */
  serialization?: 'json' | 'advanced';
  /** a thread's heap limits */
  resourceLimits?: ResourceLimits;
  /** start() rejects (and the child is killed) when no first message came within this many ms */
  startTimeoutMs?: number;
  /** the message close() sends to ask the child to finish; without it close() ends the child at once */
  stop?: In;
  /** how long close() waits after `stop` before it kills the child (default 5 s) */
  graceMs?: number;
  /**
   * A process: the kernel kills it (SIGKILL) when this process dies, through util-linux's
   * `setpriv --pdeathsig` where it is installed. For a child that may be stopped (SIGSTOP) and so
   * could never notice its parent is gone.
   */
  dieWithParent?: boolean;
}

/** util-linux's setpriv, where this system has it (Linux). */
const SETPRIV = process.platform === 'linux' ? ['/usr/bin/setpriv', '/bin/setpriv'].find((p) => existsSync(p)) : undefined;

/** Why start() failed: the child timed out, exited or failed before its first message. */
export class ChildStartError extends Error {
  constructor(
    readonly reason: 'timeout' | 'exit' | 'error',
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'ChildStartError';
  }
}

const RUNNING_FROM_SOURCE = import.meta.url.endsWith('.ts');

/**
 * The module to load for `url`, a module given with its compiled name: itself when Kennel runs
 * compiled (dist), its .ts source when Kennel runs from its sources through tsx (tests, benches).
 */
export function runnableEntry(url: URL): URL {
  return RUNNING_FROM_SOURCE && url.pathname.endsWith('.js') ? new URL(url.href.replace(/\.js$/, '.ts')) : url;
}

/** Node flags for a child process: the parent's loaders (tsx in tests) without eval, print, test, inspector or watch flags. */
function childExecArgv(): string[] {
  const out: string[] = [];
  const argv = process.execArgv;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (['-e', '--eval', '-p', '--print'].includes(a)) i++;
    else if (!/^--(test|inspect|watch|eval|print)/.test(a)) out.push(a);
  }
  return out;
}

/**
 * A worker thread on `entry`. tsx's hooks do not reach worker threads on Node 20, so a thread
 * running a .ts entry registers them itself before loading it.
 */
function startThread(entry: URL, options: ConstructorParameters<typeof Worker>[1]): Worker {
  if (!entry.pathname.endsWith('.ts')) return new Worker(entry, options);
  const tsx = import.meta.resolve('tsx/esm/api');
  return new Worker(`import(${JSON.stringify(tsx)}).then((tsx) => { tsx.register(); return import(${JSON.stringify(entry.href)}); })`, { ...options, eval: true });
}

/** A child process or worker thread speaking messages `In` (to it) and `Out` (from it). */
export class Child<In, Out> extends TypedEmitter<ChildListener<Out>> {
  private proc?: ChildProcess;
  private thread?: Worker;
  private exit?: ChildExit;
  private first?: Promise<Out>;
  private readonly ended: Promise<ChildExit>;
  private endedResolve!: (e: ChildExit) => void;

  constructor(private readonly opts: ChildOptions<In>) {
    super();
    this.ended = new Promise((resolve) => (this.endedResolve = resolve));
  }

  /** The process id, or the thread id; undefined before start(). */
  get pid(): number | undefined {
    return this.proc?.pid ?? this.thread?.threadId;
  }

  /** Started and not ended. */
  get running(): boolean {
    return (this.proc !== undefined || this.thread !== undefined) && this.exit === undefined;
  }

  /** Whether a message sent now can reach the child. */
  get connected(): boolean {
    return this.running && (this.proc ? this.proc.connected : true);
  }

  /** Resolves when the child has ended (at once with how, if it has). */
  get exited(): Promise<ChildExit> {
    return this.ended;
  }

  /** A process's stdio stream `fd` (e.g. an extra 'pipe'). */
  stream(fd: number): Readable | Writable | null {
    return (this.proc?.stdio[fd] as Readable | Writable | null | undefined) ?? null;
  }

  /**
   * Spawns the child (synchronously: messages may be sent at once) and resolves with its first
   * message, or rejects when it exits, fails or times out before sending one.
   */
  start(): Promise<Out> {
    if (this.first) return this.first;
    const { opts } = this;
    const entry = runnableEntry(opts.entry);
    if (opts.kind === 'process') {
      // setpriv sets the parent-death signal, then execs node in the same process (same pid, same IPC channel)
      const launcher = opts.dieWithParent && SETPRIV ? { execPath: SETPRIV, execArgv: ['--pdeathsig', 'KILL', process.execPath, ...childExecArgv()] } : { execArgv: childExecArgv() };
      const proc = fork(entry, opts.args ?? [], { ...launcher, env: opts.env, stdio: opts.stdio ?? ['ignore', 2, 2, 'ipc'], serialization: opts.serialization ?? 'json' });
      this.proc = proc;
      proc.on('message', (m: Out) => this.emit('message', m));
      proc.on('error', (e) => {
        this.failed(e);
        // a failed spawn ends the child here; a failed send or kill: make sure the process is gone (its exit event follows)
        if (proc.pid === undefined) this.onExit(null, null);
        else if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
      });
      proc.on('exit', (code, signal) => this.onExit(code, signal));
    } else {
      const thread = startThread(entry, { workerData: opts.data, ...(opts.env && { env: opts.env }), ...(opts.resourceLimits && { resourceLimits: opts.resourceLimits }) });
      this.thread = thread;
      thread.on('message', (m: Out) => this.emit('message', m));
      thread.on('error', (e) => this.failed(e));
      thread.on('exit', (code) => this.onExit(code, null));
    }
    this.first = new Promise<Out>((resolve, reject) => {
      let error: Error | undefined;
      const timer =
        opts.startTimeoutMs === undefined
          ? undefined
          : setTimeout(() => {
              settle(new ChildStartError('timeout', `the child did not start within ${opts.startTimeoutMs} ms`));
              void this.close(true);
            }, opts.startTimeoutMs);
      const onMessage = (m: Out) => settle(undefined, m);
      const onError = (e: Error) => (error = e);
      const onExit = (x: ChildExit) =>
        settle(error ? new ChildStartError('error', `the child failed while starting: ${error.message}`, { cause: error }) : new ChildStartError('exit', `the child exited while starting (${x.signal ? `signal ${x.signal}` : `code ${x.code}`})`));
      const settle = (e: Error | undefined, m?: Out) => {
        clearTimeout(timer);
        this.off('message', onMessage);
        this.off('error', onError);
        this.off('exit', onExit);
        if (e) reject(e);
        else resolve(m as Out);
      };
      this.on('message', onMessage);
      this.on('error', onError);
      this.on('exit', onExit);
    });
    // whoever does not await start() learns of a failed start from `exit`
    this.first.catch(() => {});
    return this.first;
  }

  /**
   * Sends a message; false when the child cannot receive it (not started, ended, disconnected).
   * Throws when `m` cannot be serialized. A thread takes `transfer`'s buffers without a copy.
   */
  send(m: In, transfer: ArrayBuffer[] = []): boolean {
    if (!this.connected) return false;
    if (this.proc) this.proc.send(m as object);
    else this.thread!.postMessage(m, transfer);
    return true;
  }

  /**
   * Ends the child and resolves when it has exited. Without `force` it is sent the `stop`
   * message (a process that cannot receive it gets SIGTERM) and killed after the grace period;
   * with `force`, or without a stop message, it is killed at once (SIGKILL, or terminate()).
   */
  async close(force = false): Promise<ChildExit | undefined> {
    if (!this.running) return this.exit;
    const { stop, graceMs = 5_000 } = this.opts;
    let timer: NodeJS.Timeout | undefined;
    if (force || stop === undefined) this.kill();
    else {
      let sent = false;
      try {
        sent = this.send(stop);
      } catch {
        // not serializable: treated as undeliverable
      }
      if (!sent) this.proc?.kill('SIGTERM');
      timer = setTimeout(() => this.kill(), graceMs);
    }
    const how = await this.ended;
    clearTimeout(timer);
    return how;
  }

  private kill(): void {
    if (!this.running) return;
    if (this.proc) this.proc.kill('SIGKILL');
    else void this.thread!.terminate();
  }

  /** `error` for whoever listens (unlike a bare EventEmitter, no listener is no crash: `exit` tells of the end). */
  private failed(e: Error): void {
    if (this.listenerCount('error')) this.emit('error', e);
  }

  private onExit(code: number | null, signal: NodeJS.Signals | null): void {
    if (this.exit) return;
    this.exit = { code, signal };
    this.emit('exit', this.exit);
    this.endedResolve(this.exit);
  }
}
