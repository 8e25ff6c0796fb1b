import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import type { Logger } from 'pino';
import { Child, TypedEmitter, rebuiltError } from '../core/index.js';
import type { BatchRun, Explanation, Prediction } from '../inference/index.js';
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

/** A replica's answer: the predictions, and the heat map when one was asked for. */
export interface Answer {
  predictions: Prediction[];
  explanation?: Explanation;
  /** the backbone's features, when asked for (a captured request) and the model has them */
  features?: number[];
}

interface Pending {
  resolve(a: Answer): void;
  reject(e: unknown): void;
}

export interface ReplicaExit {
  code: number | null;
  signal: string | null;
  wasReady: boolean;
  /** it was closed (stopped or killed on purpose), not crashed or killed as unhealthy */
  expected: boolean;
  /** why it could not start, as it said */
  reason?: string;
  /** its start failure will repeat on every retry (no usable device, say) */
  permanent?: boolean;
}

export interface ReplicaListener {
  /** it passed its readiness check and takes requests */
  ready(): void;
  exit(info: ReplicaExit): void;
  batch(run: BatchRun): void;
  /** a request on this replica was answered (a draining replica stops after its last one) */
  settled(): void;
}


let counter = 0;

/**
 * The router's handle on one replica process: writes requests to its request stream, matches
 * answers (IPC) by id,
 * counts outstanding requests (the router's least-outstanding choice), and fails every pending
 * request with ReplicaGoneError when the process dies. Lifecycle: constructed idle (listeners
 * attach), start() spawns it, `ready` when it passed its readiness check, close(force) ends it.
 */
export class ReplicaProcess extends TypedEmitter<ReplicaListener> {
  readonly id: string;
  state: ReplicaState = 'starting';
  outstanding = 0;
  startedAt = Date.now();
  readyAt: number | undefined;
  lastPong = Date.now();
  private readonly child: Child<ToReplica, FromReplica[]>;
  private requests: Socket | undefined;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private stopRequested = false;
  /** stopped by hold(true) */
  private held = false;
  private fatal: { message: string; permanent?: boolean } | undefined;
  /** lines carry the replica id and pid (known once started), so the console's logs view can show them per replica */
  private rlog: Logger | undefined;

  constructor(
    readonly config: ReplicaConfig,
    /** the pool generation (model and settings) this replica runs */
    readonly generation: number,
    private readonly log: Logger,
  ) {
    super();
    this.id = `r${++counter}`;
    this.child = new Child({
      entry: new URL('./replica.js', import.meta.url),
      kind: 'process',
      stdio: ['ignore', 'pipe', 'pipe', 'ipc', 'pipe'],
      // images decode on the libuv pool, whose default of 4 threads would cap decoding below
      // what the replica's share of the cores (or a GPU) can take
      env: { ...process.env, UV_THREADPOOL_SIZE: process.env.UV_THREADPOOL_SIZE ?? String(Math.max(4, config.threads)) },
      // a stopped replica answers what it holds, then exits; close() kills it after the grace period
      stop: { type: 'stop' },
      graceMs: 5000,
      // a shadow's replica may be held (stopped) when the daemon dies: only the kernel can end it then
      dieWithParent: config.background === true,
    });
    this.child.on('message', (batch) => {
      for (const m of batch) this.onMessage(m);
    });
    this.child.on('exit', ({ code, signal }) => {
      this.rlog?.info({ code, signal, expected: this.stopRequested }, 'replica exited');
      const wasReady = this.readyAt !== undefined;
      this.state = 'stopped';
      this.outstanding = 0;
      for (const p of this.pending.values()) p.reject(new ReplicaGoneError(this.id));
      this.pending.clear();
      this.emit('exit', { code, signal, wasReady, expected: this.stopRequested, reason: this.fatal?.message, permanent: this.fatal?.permanent });
    });
  }

  /** Spawns the process and sends it its configuration; `ready` follows its readiness check, or `exit`. */
  start(): void {
    if (this.child.pid !== undefined) return;
    this.startedAt = this.lastPong = Date.now();
    void this.child.start(); // its first message ('ready' or 'fatal') goes through onMessage
    this.requests = this.child.stream(REQUEST_FD) as Socket;
    this.requests.on('error', () => {}); // a dead replica: its exit handler fails what is pending
    const rlog = (this.rlog = this.log.child({ replica: this.id, pid: this.child.pid, model: this.config.model }));
    for (const fd of [1, 2]) createInterface({ input: this.child.stream(fd) as Readable }).on('line', (line) => rlog.warn({ output: line }, 'replica output'));
    this.child.on('error', (e) => rlog.error({ err: e.message }, 'replica process error'));
    rlog.info({ threads: this.config.threads }, 'replica started');
    this.send({ type: 'start', config: this.config });
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  /**
   * Whether a request sent now can reach the process: ready, and its channels open. A killed
   * replica loses its channels before its exit is reported; until then it still reads as ready,
   * and, refusing requests at once, as the least busy.
   */
  get accepting(): boolean {
    return this.state === 'ready' && this.channelsOpen;
  }

  private get channelsOpen(): boolean {
    return this.child.connected && this.requests !== undefined && !this.requests.destroyed;
  }

  /**
   * `image` is an encoded image, or with `tensor` one image's preprocessed model input (float32
   * bytes); topK 0: every class in label order. `explain` adds a heat map, `features` the
   * backbone's features (encoded images only).
   */
  infer(image: Uint8Array, topK: number, requestId: string, opts: { tensor?: boolean; explain?: boolean; features?: boolean } = {}): Promise<Answer> {
    const requests = this.requests;
    if (!requests || !this.channelsOpen) return Promise.reject(new ReplicaGoneError(this.id));
    const id = this.nextId++;
    this.outstanding++;
    return new Promise<Answer>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      const [head, body] = encodeRequest({ id, topK, requestId, tensor: opts.tensor ?? false, explain: opts.explain, features: opts.features }, image);
      requests.cork();
      requests.write(head);
      requests.write(body);
      requests.uncork();
    });
  }

  ping(): void {
    this.send({ type: 'ping', id: this.nextId++ });
  }

  /**
   * Ends the replica; its exit is expected (not a crash). Without `force` it finishes what it
   * holds and exits (killed after 5 s); with `force` it is killed at once.
   */
  async close(force = false): Promise<void> {
    if (this.state === 'stopped') return;
    this.stopRequested = true;
    this.hold(false); // a held process could not finish what it holds
    await this.child.close(force);
  }

  /**
   * Stops (SIGSTOP) or continues (SIGCONT) the replica's process, all its threads at once: a
   * shadow's replicas are held while their primary has requests. Its pings wait meanwhile, so
   * the last answer counts from when it continues.
   */
  hold(held: boolean): void {
    const pid = this.child.pid;
    if (pid === undefined || this.state === 'stopped' || held === this.held) return;
    this.held = held;
    try {
      process.kill(pid, held ? 'SIGSTOP' : 'SIGCONT');
    } catch {
      /* it exited meanwhile: its exit handler follows */
    }
    if (!held) this.lastPong = Date.now();
  }

  /** Kills a hung or unhealthy replica at once; its exit counts as a crash. */
  async kill(): Promise<void> {
    if (this.state === 'stopped') return;
    this.hold(false);
    this.stopRequested = false;
    await this.child.close(true);
  }

  private send(m: ToReplica): void {
    this.child.send(m);
  }

  private settle(id: number): Pending | undefined {
    const p = this.pending.get(id);
    if (p) {
      this.pending.delete(id);
      this.outstanding--;
      this.emit('settled');
    }
    return p;
  }

  private onMessage(m: FromReplica): void {
    switch (m.type) {
      case 'result':
        this.settle(m.id)?.resolve({ predictions: m.predictions, ...(m.explanation ? { explanation: m.explanation } : {}), ...(m.features ? { features: m.features } : {}) });
        break;
      case 'failed':
        this.settle(m.id)?.reject(rebuiltError(m.message, m.hint, m.status, m.code));
        break;
      case 'pong':
        this.lastPong = Date.now();
        break;
      case 'batch':
        this.emit('batch', { size: m.size, ms: m.ms, fp32Reruns: m.fp32Reruns, fp32Alone: m.fp32Alone });
        break;
      case 'ready':
        this.readyAt = Date.now();
        this.lastPong = this.readyAt;
        if (this.state === 'starting') this.state = 'ready';
        this.rlog?.info({ ms: this.readyAt - this.startedAt }, 'replica ready');
        this.emit('ready');
        break;
      case 'fatal':
        this.fatal = { message: m.message, permanent: m.permanent };
        break;
    }
  }
}
