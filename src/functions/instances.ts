import { Errors, KennelError, Child, ChildStartError } from '../core/index.js';
import { classifyHandler } from './classify.js';
import type { FunctionDefinition } from './store.js';
import type { HandlerContext } from './types.js';
import { toWire, type FromWorker, type ParentServices, type ToWorker, type WireError } from './worker-protocol.js';

/** One invocation as an instance sees it. */
export interface InvocationInfo {
  requestId: string;
  services: ParentServices;
  /** aborted, with the error as its reason, when the invocation times out */
  signal: AbortSignal;
  /** when the invocation must be finished (Date.now() time) */
  deadline: number;
}

/** Rejects with the signal's reason once it is aborted. */
const aborted = (signal: AbortSignal) => new Promise<never>((_, reject) => signal.addEventListener('abort', () => reject(signal.reason), { once: true }));

/**
 * An instance runs one invocation at a time (like a Lambda execution environment). Once
 * `broken` (timed out, crashed, out of memory) it is never reused.
 */
export interface Instance {
  invoke(event: unknown, info: InvocationInfo): Promise<unknown>;
  /** ends the instance (a handler thread is terminated: it runs one invocation at most, which is lost) */
  close(): Promise<void>;
  readonly broken: boolean;
}

export const timedOut = (def: FunctionDefinition): KennelError =>
  Errors.FunctionTimeout(`Function ${def.name} timed out after ${def.timeoutMs / 1000} s.`, `Raise it with kennel functions update ${def.name} --timeout 30s, or make the handler faster.`);

const failed = (def: FunctionDefinition, e: WireError) =>
  Errors.FunctionError(`Function ${def.name} failed: ${e.message}`, 'The handler threw an error; its message is above.');

function contextFor(def: FunctionDefinition, info: InvocationInfo): HandlerContext {
  return {
    functionName: def.name,
    requestId: info.requestId,
    endpoint: def.endpoint,
    memoryLimitInMB: def.memoryMb,
    getRemainingTimeInMillis: () => Math.max(0, info.deadline - Date.now()),
    endpoints: { invoke: (endpoint, body, contentType, opts) => info.services.invokeEndpoint(endpoint, body, contentType, opts) },
    fetchImage: (url) => info.services.fetchImage(url),
  };
}

/**
 * The built-in classify handler runs in the gateway's own thread: it is Kennel's code, so it needs
 * no isolation and pays no thread hop. Its timeout aborts its fetch and endpoint call.
 */
export class BuiltinInstance implements Instance {
  readonly broken = false;

  constructor(private readonly def: FunctionDefinition) {}

  invoke(event: unknown, info: InvocationInfo): Promise<unknown> {
    return Promise.race([classifyHandler(event, contextFor(this.def, info)), aborted(info.signal)]);
  }

  async close(): Promise<void> {}
}

/**
 * A user handler in its own worker thread: a V8 heap capped at the function's memory, terminated
 * at its timeout, and an environment without the daemon's variables. The handler reaches
 * endpoints only through the parent (see ParentServices). Worker threads share the process, so
 * this isolates memory, time and crashes, not the network or file system.
 */
export class WorkerInstance implements Instance {
  private current?: { id: number; info: InvocationInfo; resolve: (v: unknown) => void; reject: (e: Error) => void; onAbort: () => void };
  private seq = 0;
  private dead = false;

  private constructor(
    private readonly def: FunctionDefinition,
    private readonly worker: Child<ToWorker, FromWorker>,
  ) {
    worker.on('message', (m) => this.onMessage(m));
    worker.on('error', (e: Error & { code?: string }) => {
      this.dead = true;
      const oom = e.code === 'ERR_WORKER_OUT_OF_MEMORY';
      this.fail(
        oom
          ? Errors.FunctionOutOfMemory(`Function ${def.name} ran out of memory (${def.memoryMb} MB).`, `Raise it with kennel functions update ${def.name} --memory ${def.memoryMb * 2}MB.`)
          : failed(def, toWire(e)),
      );
    });
    worker.on('exit', () => {
      this.dead = true;
      this.fail(failed(def, { message: 'the handler exited' }));
    });
  }

  /** Starts the thread and loads the handler module: the cold start. */
  static async start(def: FunctionDefinition, modulePath: string): Promise<WorkerInstance> {
    const startTimeoutMs = Math.max(def.timeoutMs, 10_000);
    const worker = new Child<ToWorker, FromWorker>({
      entry: new URL('./worker.js', import.meta.url),
      kind: 'thread',
      data: { modulePath },
      env: { NODE_ENV: process.env.NODE_ENV ?? 'production', KENNEL_FUNCTION_NAME: def.name },
      resourceLimits: { maxOldGenerationSizeMb: def.memoryMb, maxYoungGenerationSizeMb: Math.min(32, Math.max(4, Math.floor(def.memoryMb / 8))) },
      startTimeoutMs,
    });
    let first: FromWorker;
    try {
      first = await worker.start();
    } catch (e) {
      if (!(e instanceof ChildStartError)) throw e;
      if (e.reason === 'timeout') throw Errors.FunctionTimeout(`Function ${def.name} did not start within ${startTimeoutMs / 1000} s.`, 'Its module does too much work when loaded.');
      if (e.reason === 'error') throw e.cause as Error;
      throw Errors.FunctionError(`Function ${def.name} exited while starting.`);
    }
    if (first.type === 'ready') return new WorkerInstance(def, worker);
    await worker.close(true);
    if (first.type === 'init-failed') throw Errors.FunctionError(`Function ${def.name} could not start: ${first.error.message}`, 'Loading the handler module failed.');
    throw Errors.FunctionError(`Function ${def.name} sent ${first.type} before it was ready.`);
  }

  get broken(): boolean {
    return this.dead;
  }

  invoke(event: unknown, info: InvocationInfo): Promise<unknown> {
    if (this.dead || this.current) return Promise.reject(new Error('instance is not available'));
    const id = ++this.seq;
    return new Promise((resolve, reject) => {
      // a timed-out handler cannot be interrupted inside its thread: the thread is terminated
      const onAbort = () => {
        this.dead = true;
        this.fail(info.signal.reason);
        void this.worker.close(true);
      };
      info.signal.addEventListener('abort', onAbort, { once: true });
      this.current = { id, info, resolve, reject, onAbort };
      const message: ToWorker = { type: 'invoke', id, event, context: { functionName: this.def.name, requestId: info.requestId, endpoint: this.def.endpoint, memoryLimitInMB: this.def.memoryMb, deadline: info.deadline } };
      try {
        this.worker.send(message);
      } catch (e) {
        this.finish();
        reject(Errors.InvalidRequest(`The event cannot be passed to function ${this.def.name}: ${(e as Error).message}`));
      }
    });
  }

  async close(): Promise<void> {
    this.dead = true;
    await this.worker.close(true);
  }

  private finish() {
    const c = this.current;
    c?.info.signal.removeEventListener('abort', c.onAbort);
    this.current = undefined;
    return c;
  }

  private fail(e: Error) {
    this.finish()?.reject(e);
  }

  private onMessage(m: FromWorker): void {
    const c = this.current;
    if (m.type === 'rpc') {
      if (!c) return;
      const reply = (r: ToWorker) => {
        if (this.current === c && !this.dead) this.worker.send(r);
      };
      const call =
        m.method === 'invokeEndpoint'
          ? c.info.services.invokeEndpoint(...(m.args as Parameters<ParentServices['invokeEndpoint']>))
          : m.method === 'fetchImage'
            ? c.info.services.fetchImage(...(m.args as Parameters<ParentServices['fetchImage']>))
            : Promise.reject(new Error(`unknown call ${String(m.method)}`));
      call.then(
        (value) => reply({ type: 'rpc-result', callId: m.callId, ok: true, value }),
        (e) => reply({ type: 'rpc-result', callId: m.callId, ok: false, error: toWire(e) }),
      );
      return;
    }
    if (m.type === 'done' && c && m.id === c.id) {
      this.finish();
      if (m.ok) c.resolve(m.value);
      else c.reject(failed(this.def, m.error));
    }
  }
}
