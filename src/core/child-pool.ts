/**
 * A pool of worker processes for CPU-bound jobs (like BullMQ's ChildPool): images decoded for a
 * GPU, images checked on import. One Node process decodes with every core only so far (libvips
 * and the event loop serialise part of each image), while separate processes scale: on a GPU
 * host of 16 cores, 503 images/s in one process against 2,346 in 16.
 * - A job goes to the worker with the fewest jobs in hand, by IPC (structured clone: a job's
 *   buffers travel as bytes).
 * - Its answer comes back as one frame on a socket of the worker's own (IPC would clone megabytes
 *   of pixels through a serialiser), which the pool reads into one buffer, used for every read: a
 *   stream's fresh buffer per read cost this process more in page faults and garbage collection
 *   than the bytes it carried.
 * - A worker that dies fails only the jobs it held and is replaced.
 * - Workers run 10 nice values below the pool's process: they take every idle cycle, but the
 *   process they serve gets a core when it needs one (on that host a GPU session's thread fell
 *   from 1,336 to 835 images/s while 16 decode processes at its priority held the cores).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, createServer, type Socket } from 'node:net';
import { availableParallelism, getPriority, setPriority, tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { Child } from './child.js';

/** A frame on a worker's socket: job id, status (0: the answer's bytes follow; 1: an error message follows), payload length, then the payload. */
export const FRAME_HEADER = 12;
/** how far below the pool's process the workers' scheduling priority is (nice values) */
const WORKER_NICENESS = 10;
/** bytes one read of a worker's socket takes at most, into a buffer kept for the worker */
const READ_BUFFER = 1 << 20;

/** the environment variable that tells a worker where to listen for the pool's connection */
const FRAMES_SOCKET = 'KENNEL_POOL_SOCKET';

/** A socket's path in `dir` (a named pipe on Windows, where sockets are not files). */
const socketPath = (dir: string): string => (process.platform === 'win32' ? `\\\\.\\pipe\\${basename(dir)}` : join(dir, 'frames'));

/**
 * Worker processes for a pool of `items` images: KENNEL_DECODE_WORKERS when set (0: none, this
 * process decodes), else one per core on a machine of 8 cores or more with at least 500 images.
 * With fewer cores one process keeps up with its libuv pool (on 2 cores the workers are slower),
 * and for fewer images starting the processes costs more than they save.
 */
export function decodeWorkerCount(items: number): number {
  const set = process.env.KENNEL_DECODE_WORKERS;
  if (set !== undefined && set !== '') return Math.max(0, Math.floor(Number(set)) || 0);
  const cores = availableParallelism();
  return cores >= 8 && items >= 500 ? cores : 0;
}

/** A job's handler failed in its worker (unlike a worker that ended or a closed pool: the job itself is at fault). */
export class ChildJobError extends Error {
  override name = 'ChildJobError';
}

/** A job's worker ended before answering it (crashed, killed): the job may be sound, or what killed it. */
export class ChildGoneError extends Error {
  override name = 'ChildGoneError';
}

interface JobMessage<Job> {
  id: number;
  job: Job;
}

export interface ChildPoolOptions {
  /** the worker's entry module, which calls serveJobs: `new URL('./x-worker.js', import.meta.url)` */
  entry: URL;
  size: number;
  /** what the pool's workers do, for error messages: 'decode worker' */
  name: string;
  /** extra environment of the workers (UV_THREADPOOL_SIZE is 1 unless set here) */
  env?: NodeJS.ProcessEnv;
}

/**
 * Reads a worker's frames as they arrive, in whatever chunks the socket gives (each chunk is
 * overwritten after push() returns), copying each payload once: into the buffer its job named
 * (`target`), else into one of its own.
 */
export class FrameReader {
  private readonly head = Buffer.alloc(FRAME_HEADER);
  private headBytes = 0;
  private frame: { id: number; status: number; payload: Uint8Array; filled: number } | undefined;

  constructor(
    private readonly target: (id: number, status: number, length: number) => Uint8Array | undefined,
    private readonly onFrame: (id: number, status: number, payload: Uint8Array) => void,
  ) {}

  push(chunk: Uint8Array): void {
    let at = 0;
    while (at < chunk.length) {
      const f = this.frame;
      if (!f) {
        const n = Math.min(FRAME_HEADER - this.headBytes, chunk.length - at);
        this.head.set(chunk.subarray(at, at + n), this.headBytes);
        this.headBytes += n;
        at += n;
        if (this.headBytes < FRAME_HEADER) return;
        this.headBytes = 0;
        const [id, status, length] = [this.head.readUInt32LE(0), this.head.readUInt32LE(4), this.head.readUInt32LE(8)];
        const into = this.target(id, status, length);
        this.frame = { id, status, payload: into ?? Buffer.allocUnsafe(length), filled: 0 };
        if (length === 0) this.finish();
        continue;
      }
      const n = Math.min(f.payload.length - f.filled, chunk.length - at);
      f.payload.set(chunk.subarray(at, at + n), f.filled);
      f.filled += n;
      at += n;
      if (f.filled === f.payload.length) this.finish();
    }
  }

  private finish(): void {
    const f = this.frame!;
    this.frame = undefined;
    this.onFrame(f.id, f.status, f.payload);
  }
}

interface Slot {
  child: Child<JobMessage<unknown>, 'ready'>;
  /** the worker is ready and its socket connected (a job sent before could be lost while the worker loads) */
  ready: Promise<unknown>;
  /** jobs sent and not answered */
  load: number;
}

export class ChildPool<Job> {
  private nextId = 1;
  private readonly pending = new Map<number, { slot: number; into?: Uint8Array; resolve(bytes: Uint8Array): void; reject(e: Error): void }>();
  private readonly slots: Slot[] = [];
  private closed = false;

  private constructor(private readonly opts: ChildPoolOptions) {
    for (let i = 0; i < Math.max(1, opts.size); i++) this.spawn(i);
  }

  /** Starts the workers and resolves when all are ready (rejects, the pool closed, if one cannot start). */
  static async start<Job>(opts: ChildPoolOptions): Promise<ChildPool<Job>> {
    const pool = new ChildPool<Job>(opts);
    try {
      await Promise.all(pool.slots.map((s) => s.ready));
    } catch (e) {
      await pool.close();
      throw e;
    }
    return pool;
  }

  /**
   * Starts the worker of slot `i` (spawned at once; its start() waits for `ready`). A worker
   * that dies fails the jobs it held and is replaced, so one crash costs its jobs, not the pool.
   */
  private spawn(i: number): void {
    // the worker's socket, in a folder only this user can reach, removed once connected or when the worker ends
    const dir = mkdtempSync(join(tmpdir(), 'kennel-pool-'));
    const removeDir = () => rmSync(dir, { recursive: true, force: true });
    const path = socketPath(dir);
    const child = new Child<JobMessage<unknown>, 'ready'>({
      entry: this.opts.entry,
      kind: 'process',
      env: { ...process.env, UV_THREADPOOL_SIZE: '1', ...this.opts.env, [FRAMES_SOCKET]: path },
      serialization: 'advanced',
      startTimeoutMs: 60_000,
    });
    let socket: Socket | undefined;
    const ready = child.start().then(
      () =>
        new Promise<void>((resolve, reject) => {
          socket = connect({
            path,
            onread: {
              buffer: Buffer.allocUnsafe(READ_BUFFER),
              callback: (n, buf) => {
                reader.push(buf.subarray(0, n));
                return true;
              },
            },
          });
          socket.once('connect', () => {
            removeDir();
            resolve();
          });
          // a worker that dies closes its socket: its jobs fail through its exit, below
          socket.on('error', reject);
        }),
    );
    try {
      if (child.pid !== undefined) setPriority(child.pid, Math.min(19, getPriority() + WORKER_NICENESS));
    } catch {
      // a system that refuses it: the workers run at the pool's own priority
    }
    let wasReady = false;
    ready.then(() => (wasReady = true), () => {});
    this.slots[i] = { child, ready, load: 0 };
    const reader = new FrameReader(
      (id, status, length) => {
        const into = this.pending.get(id)?.into;
        return status === 0 && into?.length === length ? into : undefined;
      },
      (id, status, payload) => {
        const p = this.pending.get(id);
        if (!p) return;
        this.pending.delete(id);
        this.slots[i]!.load--;
        if (status !== 0) p.reject(new ChildJobError(Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength).toString()));
        else if (p.into && payload !== p.into) p.reject(new Error(`a ${this.opts.name} answered ${payload.length} bytes where ${p.into.length} were expected`));
        else p.resolve(payload);
      },
    );
    child.on('exit', ({ code, signal }) => {
      socket?.destroy();
      removeDir();
      const why = new ChildGoneError(`a ${this.opts.name} ended (${signal ?? `exit code ${code}`})`);
      for (const [id, p] of this.pending) {
        if (p.slot !== i) continue;
        this.pending.delete(id);
        p.reject(why);
      }
      // a worker that never became ready is not restarted: it would fail again, in a loop
      if (!this.closed && wasReady) this.spawn(i);
    });
  }

  get size(): number {
    return this.slots.length;
  }

  /** The worker processes' ids (for tests and diagnostics). */
  get pids(): Array<number | undefined> {
    return this.slots.map((s) => s.child.pid);
  }

  /**
   * Runs `job` on the least busy worker; resolves with the bytes its handler answered, rejects
   * with its error (ChildJobError), or ChildGoneError when its worker ended first. With `into`,
   * the answer must be exactly its size and is written there as it arrives (no copy of its
   * own), and `into` is what resolves.
   */
  run(job: Job, into?: Uint8Array): Promise<Uint8Array> {
    if (this.closed) return Promise.reject(new Error(`the ${this.opts.name} pool is closed`));
    let i = 0;
    for (let j = 1; j < this.slots.length; j++) if (this.slots[j]!.load < this.slots[i]!.load) i = j;
    const slot = this.slots[i]!;
    slot.load++;
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { slot: i, into, resolve, reject });
      slot.ready.then(
        () => {
          if (this.pending.has(id) && !slot.child.send({ id, job })) {
            this.pending.delete(id);
            slot.load--;
            reject(new Error(`a ${this.opts.name} is not running`));
          }
        },
        (e: unknown) => {
          this.pending.delete(id);
          reject(new Error(`a ${this.opts.name} could not start: ${e instanceof Error ? e.message : String(e)}`));
        },
      );
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(this.slots.map((s) => s.child.close(true)));
    for (const p of this.pending.values()) p.reject(new Error(`the ${this.opts.name} pool is closed`));
    this.pending.clear();
  }
}

/**
 * The worker side, called once by a ChildPool's entry module: listens on the socket the pool
 * named and says it is ready; answers every job with `handle`'s bytes (or its error's message),
 * one frame each on the pool's connection. An answer of several parts is written part by part:
 * joining them first would copy it into fresh memory.
 */
export function serveJobs<Job>(handle: (job: Job) => Promise<Uint8Array | Uint8Array[]>): void {
  const send = process.send?.bind(process);
  if (!send) throw new Error('a pool worker is started by a ChildPool, with an IPC channel');
  // without the pool nobody reads the answers: exit rather than linger
  process.on('disconnect', () => process.exit(0));
  const path = process.env[FRAMES_SOCKET];
  if (!path) throw new Error(`a pool worker is started by a ChildPool, which sets ${FRAMES_SOCKET}`);
  const server = createServer();
  // the pool's connection: the only one taken; once it breaks, nobody reads the answers
  const connection = new Promise<Socket>((resolve) =>
    server.once('connection', (socket) => {
      server.close();
      socket.on('error', () => process.exit(0));
      resolve(socket);
    }),
  );
  // every frame awaits the connection, so frames go out in the order they were made
  const frame = async (id: number, status: 0 | 1, payload: Uint8Array | Uint8Array[]): Promise<void> => {
    const frames = await connection;
    const parts = Array.isArray(payload) ? payload : [payload];
    const head = Buffer.alloc(FRAME_HEADER);
    head.writeUInt32LE(id, 0);
    head.writeUInt32LE(status, 4);
    head.writeUInt32LE(parts.reduce((n, p) => n + p.byteLength, 0), 8);
    frames.cork();
    frames.write(head);
    for (const part of parts) frames.write(part);
    frames.uncork();
  };
  process.on('message', ({ id, job }: JobMessage<Job>) => {
    void handle(job).then(
      (bytes) => frame(id, 0, bytes),
      (e: unknown) => frame(id, 1, Buffer.from(e instanceof Error ? e.message : String(e))),
    );
  });
  server.listen(path, () => send('ready'));
}
