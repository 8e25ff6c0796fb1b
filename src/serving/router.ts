import type { Logger } from 'pino';
import { notFound, Errors, KennelError } from '../core/index.js';
import type { Explanation, Prediction } from '../inference/index.js';
import { ReplicaGoneError } from './replica-process.js';
import type { CaptureSink } from './capture.js';
import type { ShadowMirror } from './shadow.js';
import type { ReplicaPool } from './supervisor.js';

export interface RoutedVariant {
  name: string;
  weight: number;
  pool: ReplicaPool;
}

interface RoutedEndpoint {
  variants: RoutedVariant[];
  timeoutMs: number;
  shadow?: ShadowMirror;
  capture?: CaptureSink;
}

/** A request's destination: the endpoint and the variant picked for it by weight. */
export interface Target {
  endpoint: string;
  variant: RoutedVariant;
  timeoutMs: number;
  /** set when this request is one of the share mirrored to the endpoint's shadow */
  shadow?: ShadowMirror;
  /** set when this request is one of the share captured for drift checks */
  capture?: CaptureSink;
}

export interface InvocationResult {
  predictions: Prediction[];
  /** "NAME@VERSION" of the model that answered */
  model: string;
  variant: string;
  /** id of the replica that answered (a response header, not part of the body) */
  replica: string;
  /** the heat map of the best class, when asked for */
  explanation?: Explanation;
  /** the backbone's features of a captured request (not part of the body) */
  features?: number[];
}

/**
 * Sends each request to a variant chosen by weight, then to that variant's ready replica with
 * the fewest outstanding requests. A request whose replica dies is retried once on another
 * (inference is idempotent); every request has a deadline.
 *
 * Shadows get only CPU that serving leaves idle: while any request of any endpoint is in flight,
 * every shadow's replicas are held (stopped, see ReplicaPool.hold). A low CPU priority alone still
 * cost the primaries' p99 a third, through the shared caches and the wake-ups of their ORT
 * threads on a core a shadow held.
 */
export class Router {
  private readonly endpoints = new Map<string, RoutedEndpoint>();
  /** requests in flight, all endpoints */
  private inFlight = 0;
  /** the shadow pools held while requests are in flight */
  private readonly heldShadows = new Set<ReplicaPool>();

  constructor(
    private readonly log: Logger,
    private readonly random: () => number = Math.random,
  ) {}

  set(endpoint: string, variants: RoutedVariant[], timeoutMs: number, shadow?: ShadowMirror, capture?: CaptureSink): void {
    this.endpoints.set(endpoint, { variants, timeoutMs, shadow, capture });
    if (this.inFlight > 0) this.holdShadows();
  }

  private holdShadows(): void {
    for (const { shadow } of this.endpoints.values()) {
      if (shadow && !this.heldShadows.has(shadow.pool)) {
        shadow.pool.hold();
        this.heldShadows.add(shadow.pool);
      }
    }
  }

  private requestStarted(): void {
    if (this.inFlight++ === 0) this.holdShadows();
  }

  private requestEnded(): void {
    if (--this.inFlight > 0) return;
    for (const pool of this.heldShadows) pool.release();
    this.heldShadows.clear();
  }

  has(endpoint: string): boolean {
    return this.endpoints.has(endpoint);
  }

  remove(endpoint: string): void {
    this.endpoints.delete(endpoint);
  }

  /** Picks the variant for a request by weight, or the one named; 404 for an unknown endpoint, 400 for an unknown variant. */
  route(endpoint: string, variantName?: string): Target {
    const ep = this.endpoints.get(endpoint);
    if (!ep) throw notFound(`Endpoint ${endpoint}`, 'List endpoints with kennel endpoints list.');
    if (variantName !== undefined) {
      const named = ep.variants.find((v) => v.name === variantName);
      if (!named) throw Errors.UnknownVariant(`Endpoint ${endpoint} has no variant ${variantName}.`, `Its variants: ${ep.variants.map((v) => v.name).join(', ')}.`);
      return { endpoint, variant: named, timeoutMs: ep.timeoutMs, shadow: ep.shadow?.sample() ? ep.shadow : undefined, capture: ep.capture?.sample() ? ep.capture : undefined };
    }
    const total = ep.variants.reduce((s, v) => s + v.weight, 0);
    let x = this.random() * total;
    let variant = ep.variants[ep.variants.length - 1]!;
    for (const v of ep.variants) {
      x -= v.weight;
      if (x < 0) {
        variant = v;
        break;
      }
    }
    return { endpoint, variant, timeoutMs: ep.timeoutMs, shadow: ep.shadow?.sample() ? ep.shadow : undefined, capture: ep.capture?.sample() ? ep.capture : undefined };
  }

  /**
   * Runs a request on its variant: `image` is the encoded image, or with `tensor` the image's
   * preprocessed model input (float32, little-endian, the model's layout); `topK` 0 answers every
   * class in label order. A request picked for the shadow is copied to it on a later event-loop
   * turn (setImmediate), after the answer is on its way: the shadow never delays it. Tensors
   * (the Open Inference Protocol's) are neither mirrored nor captured: both need the image.
   */
  async invoke(target: Target, image: Uint8Array, opts: { topK: number; requestId: string; tensor?: boolean; explain?: boolean }): Promise<InvocationResult> {
    const { shadow, capture } = target;
    if ((!shadow && !capture) || opts.tensor) return this.answer(target, image, opts);
    const t0 = performance.now();
    try {
      const result = await this.answer(target, image, opts, capture !== undefined);
      if (capture) {
        const captured = { model: result.model, variant: result.variant, predictions: result.predictions, features: result.features, ms: performance.now() - t0 };
        delete result.features;
        setImmediate(() => capture.record(image, captured));
      }
      if (!shadow) return result;
      const outcome = { model: result.model, predictions: result.predictions, ms: performance.now() - t0 };
      setImmediate(() => shadow.mirror(image, opts.requestId, outcome, target.variant.pool));
      return result;
    } catch (e) {
      // the image's own fault (bad_image): the shadow's answer to it is worth comparing; an
      // overloaded or timed-out primary says nothing about the model, and the shadow is spared
      if (shadow && e instanceof KennelError && e.status < 500) {
        const outcome = { model: target.variant.pool.model, error: e.code, ms: performance.now() - t0 };
        setImmediate(() => shadow.mirror(image, opts.requestId, outcome, target.variant.pool));
      }
      throw e;
    }
  }

  private async answer(target: Target, image: Uint8Array, opts: { topK: number; requestId: string; tensor?: boolean; explain?: boolean }, features = false): Promise<InvocationResult> {
    const pool = target.variant.pool;
    const deadline = Date.now() + target.timeoutMs;
    pool.begin();
    this.requestStarted();
    try {
      for (let attempt = 0; ; attempt++) {
        const replica = await pool.acquire(deadline);
        try {
          const answer = await withDeadline(replica.infer(image, opts.topK, opts.requestId, { tensor: opts.tensor, explain: opts.explain, features }), deadline, target.endpoint);
          return { predictions: answer.predictions, model: replica.config.model, variant: target.variant.name, replica: replica.id, ...(answer.explanation ? { explanation: answer.explanation } : {}), ...(answer.features ? { features: answer.features } : {}) };
        } catch (e) {
          const retryable = e instanceof ReplicaGoneError || Errors.ReplicaStopping.is(e);
          if (!retryable) throw e;
          if (attempt === 0) {
            this.log.warn({ reqId: opts.requestId, endpoint: target.endpoint, replica: replica.id }, 'replica went away during the request; retrying on another');
            continue;
          }
          throw Errors.ReplicaFailed('The replicas serving this request exited twice in a row.', 'Retry; if it keeps happening, see kennel endpoints describe for crashing replicas.');
        }
      }
    } finally {
      pool.end();
      this.requestEnded();
    }
  }
}

function withDeadline<T>(p: Promise<T>, deadline: number, endpoint: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(Errors.Timeout(`Endpoint ${endpoint} did not answer in time.`, 'Retry; the endpoint may be overloaded.')), Math.max(0, deadline - Date.now()));
    p.then(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      (e: unknown) => {
        clearTimeout(timer);
        reject(e);
      },
    );
  });
}
