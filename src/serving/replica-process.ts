import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import { KennelError } from '../core/errors.js';
import type { Prediction } from './classifier.js';
import type { Socket } from 'node:net';
import { REQUEST_FD, encodeRequest, type FromReplica, type ReplicaConfig, type ToReplica } from './protocol.js';

export type ReplicaState = 'starting' | 'ready' | 'draining' | 'stopped';

/** The replica process exited while a request was on it; inference is idempotent, so it can be retried. */
export class ReplicaGoneError extends Error {
  constructor(readonly replica: string) {
    super(`replica ${replica} exited`);
    this.name = 'ReplicaGoneError';
  }
}

/** The compiled entry when running from dist, else the TypeScript source (tests and benches run through tsx). */
function replicaEntry(): string {
  const js = fileURLToPath(new URL('./replica.js', import.meta.url));
  return existsSync(js) ? js : fileURLToPath(new URL('./replica.ts', import.meta.url));
}

/** The parent's node flags (e.g. --import tsx) without test-runner, inspector and watch flags. */
function childExecArgv(): string[] {
  return process.execArgv.filter((a) => !/^--(test|inspect|watch)/.test(a));
}

interface Pending {
  resolve(p: Prediction[]): void;
  reject(e: unknown): void;
}

export interface ReplicaEvents {
  ready(r: ReplicaProcess): void;
  exit(r: ReplicaProcess, info: { code: number | null; signal: string | null; wasReady: boolean; expected: boolean; reason?: string }): void;
  batch(r: ReplicaProcess, size: number, ms: number): void;
  /** a request on this replica was answered (a draining replica stops after its last one) */
  settled(r: ReplicaProcess): void;
}

let counter = 0;

/**
 * The router's handle on one replica process: writes requests to its request stream, matches
 * answers (IPC) by id,
 * counts outstanding requests (the router's least-outstanding choice), and fails every pending
 * request with ReplicaGoneError when the process dies.
 */
export class ReplicaProcess {
  readonly id: string;
  state: ReplicaState = 'starting';
  outstanding = 0;
  readonly startedAt = Date.now();
  readyAt: number | undefined;
  lastPong = Date.now();
  private readonly child: ChildProcess;
  private readonly requests: Socket;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private stopRequested = false;
  private fatal: string | undefined;
  private readonly exited: Promise<void>;
  /** lines carry the replica id, so the console's logs view can show them per replica */
  private readonly log: Logger;

  constructor(
    readonly config: ReplicaConfig,
    /** the pool generation (model and settings) this replica runs */
    readonly generation: number,
    private readonly events: ReplicaEvents,
    log: Logger,
  ) {
    this.id = `r${++counter}`;
    this.child = spawn(process.execPath, [...childExecArgv(), replicaEntry()], {
      stdio: ['ignore', 'pipe', 'pipe', 'ipc', 'pipe'],
      // images decode on the libuv pool, whose default of 4 threads would cap decoding below
      // what the replica's share of the cores (or a GPU) can take
      env: { ...process.env, UV_THREADPOOL_SIZE: process.env.UV_THREADPOOL_SIZE ?? String(Math.max(4, config.threads)) },
    });
    this.requests = this.child.stdio[REQUEST_FD] as Socket;
    this.requests.on('error', () => {}); // a dead replica: its exit handler fails what is pending
    const rlog = (this.log = log.child({ replica: this.id, pid: this.child.pid, model: config.model }));
    for (const stream of [this.child.stdout!, this.child.stderr!]) createInterface({ input: stream }).on('line', (line) => rlog.warn({ output: line }, 'replica output'));
    this.child.on('message', (batch: FromReplica[]) => {
      for (const m of batch) this.onMessage(m);
    });
    this.child.on('error', (e) => rlog.error({ err: e.message }, 'replica process error'));
    rlog.info({ threads: config.threads }, 'replica started');
    this.send({ type: 'start', config });
    this.exited = new Promise((resolve) =>
      this.child.on('exit', (code, signal) => {
        rlog.info({ code, signal, expected: this.stopRequested }, 'replica exited');
        const wasReady = this.readyAt !== undefined;
        this.state = 'stopped';
        this.outstanding = 0;
        for (const p of this.pending.values()) p.reject(new ReplicaGoneError(this.id));
        this.pending.clear();
        this.events.exit(this, { code, signal, wasReady, expected: this.stopRequested, reason: this.fatal });
        resolve();
      }),
    );
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  infer(image: Uint8Array, topK: number, requestId: string): Promise<Prediction[]> {
    if (!this.child.connected || this.requests.destroyed) return Promise.reject(new ReplicaGoneError(this.id));
    const id = this.nextId++;
    this.outstanding++;
    return new Promise<Prediction[]>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      const [head, body] = encodeRequest({ id, topK, requestId }, image);
      this.requests.cork();
      this.requests.write(head);
      this.requests.write(body);
      this.requests.uncork();
    });
  }

  ping(): void {
    this.send({ type: 'ping', id: this.nextId++ });
  }

  /** Asks the replica to finish what it has and exit; kills it after graceMs. */
  async stop(graceMs = 5000): Promise<void> {
    if (this.state === 'stopped') return;
    this.stopRequested = true;
    this.send({ type: 'stop' });
    const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(timer);
  }

  /** Ends the process at once (a hung or unhealthy replica). */
  kill(expected = true): Promise<void> {
    if (this.state !== 'stopped') {
      this.stopRequested = expected;
      this.child.kill('SIGKILL');
    }
    return this.exited;
  }

  private send(m: ToReplica): void {
    if (this.child.connected) this.child.send(m);
  }

  private settle(id: number): Pending | undefined {
    const p = this.pending.get(id);
    if (p) {
      this.pending.delete(id);
      this.outstanding--;
      this.events.settled(this);
    }
    return p;
  }

  private onMessage(m: FromReplica): void {
    switch (m.type) {
      case 'result':
        this.settle(m.id)?.resolve(m.predictions);
        break;
      case 'failed':
        this.settle(m.id)?.reject(new KennelError(m.message, m.hint, m.status, m.code));
        break;
      case 'pong':
        this.lastPong = Date.now();
        break;
      case 'batch':
        this.events.batch(this, m.size, m.ms);
        break;
      case 'ready':
        this.readyAt = Date.now();
        this.lastPong = this.readyAt;
        if (this.state === 'starting') this.state = 'ready';
        this.log.info({ ms: this.readyAt - this.startedAt }, 'replica ready');
        this.events.ready(this);
        break;
      case 'fatal':
        this.fatal = m.message;
        break;
    }
  }
}
