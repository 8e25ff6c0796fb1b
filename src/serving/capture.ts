import { createHash } from 'node:crypto';
import { Rng, seedFrom } from '../core/index.js';
import type { Prediction } from '../inference/index.js';
import { keepNewestRows, type Workspace } from '../store/index.js';
import type { Capture } from './endpoints.js';

/** Numbers stored per captured request: a fixed random projection of the backbone's features. */
export const CAPTURE_DIMS = 64;

/** The seed of an endpoint's projection: fixed per endpoint, so every capture and the training reference are projected alike. */
export const captureSeed = (endpoint: string): number => seedFrom(0x6b656e6e, 'capture', endpoint);

/**
 * The endpoint's projection of `dim` features to CAPTURE_DIMS numbers: a seeded Gaussian matrix
 * scaled by 1/sqrt(CAPTURE_DIMS) (distances kept approximately, Johnson-Lindenstrauss), row-major
 * [dim, CAPTURE_DIMS]. The drift check projects training's features with the same matrix.
 */
export function captureProjection(endpoint: string, dim: number): Float32Array {
  const rng = new Rng(captureSeed(endpoint));
  const m = new Float32Array(dim * CAPTURE_DIMS);
  const s = 1 / Math.sqrt(CAPTURE_DIMS);
  for (let i = 0; i < m.length; i++) m[i] = rng.normal() * s;
  return m;
}

/** One row of features times the projection. */
export function projectRow(x: ArrayLike<number>, p: Float32Array): Float32Array {
  const out = new Float32Array(CAPTURE_DIMS);
  for (let k = 0; k < x.length; k++) {
    const v = x[k]!;
    if (v === 0) continue;
    const row = k * CAPTURE_DIMS;
    for (let c = 0; c < CAPTURE_DIMS; c++) out[c]! += v * p[row + c]!;
  }
  return out;
}

/** A captured request, as read back. */
export interface CapturedRequest {
  id: number;
  model: string;
  variant: string;
  at: number;
  sha256: string;
  label: string;
  score: number;
  latencyMs: number;
  /** CAPTURE_DIMS numbers, or undefined when the model had no features to give */
  features?: Float32Array;
}

interface Row {
  endpoint: string;
  model: string;
  variant: string;
  at: number;
  sha256: string;
  label: string;
  score: number;
  latency_ms: number;
  features: Buffer | null;
  image: Buffer | null;
}

const DAY_MS = 86_400_000;

/**
 * An endpoint's data capture: the router marks a share of requests (`sample()`); those run with
 * the backbone's features as an extra output and, once answered, are recorded here: the image's
 * sha256, the endpoint's projection of its features, top-1 label and probability, variant, model,
 * latency, time, and the image bytes only with `images`. Rows are buffered and written once a
 * second in one transaction; each write keeps the newest `maxRows` of the endpoint and deletes
 * rows past `retentionDays` (the daemon's timer does too, for endpoints without traffic).
 */
export class CaptureSink {
  private rows: Row[] = [];
  private readonly timer: NodeJS.Timeout;
  private closed = false;
  private projection: Float32Array | undefined;

  constructor(
    private readonly ws: Workspace,
    readonly endpoint: string,
    public capture: Capture,
    private readonly random: () => number = Math.random,
  ) {
    this.timer = setInterval(() => this.flush(), 1000);
    this.timer.unref();
  }

  sample(): boolean {
    return this.capture.percent >= 100 || this.random() * 100 < this.capture.percent;
  }

  /** Records an answered request (called after the answer is on its way). */
  record(image: Uint8Array, a: { model: string; variant: string; predictions: Prediction[]; features?: number[]; ms: number }): void {
    if (this.closed) return;
    const top = a.predictions[0];
    if (!top) return;
    let features: Buffer | null = null;
    if (a.features?.length) {
      if (this.projection?.length !== a.features.length * CAPTURE_DIMS) this.projection = captureProjection(this.endpoint, a.features.length);
      const p = projectRow(a.features, this.projection);
      features = Buffer.from(p.buffer, p.byteOffset, p.byteLength);
    }
    this.rows.push({
      endpoint: this.endpoint,
      model: a.model,
      variant: a.variant,
      at: Date.now(),
      sha256: createHash('sha256').update(image).digest('hex'),
      label: top.label,
      score: top.score,
      latency_ms: a.ms,
      features,
      image: this.capture.images ? Buffer.from(image) : null,
    });
  }

  flush(): void {
    const rows = this.rows;
    if (!rows.length) return;
    this.rows = [];
    const insert = this.ws.db.prepare('INSERT INTO captures (endpoint, model, variant, at, sha256, label, score, latency_ms, features, image) VALUES (@endpoint, @model, @variant, @at, @sha256, @label, @score, @latency_ms, @features, @image)');
    this.ws.db.transaction(() => {
      for (const r of rows) insert.run(r);
      enforceCaptureBounds(this.ws, this.endpoint, this.capture);
    })();
  }

  close(): void {
    if (this.closed) return;
    clearInterval(this.timer);
    try {
      this.flush();
    } finally {
      this.closed = true;
    }
  }
}

/** Deletes an endpoint's captures past its retention and beyond its newest `maxRows`; returns how many went. */
export function enforceCaptureBounds(ws: Workspace, endpoint: string, capture: Pick<Capture, 'retentionDays' | 'maxRows'>, at = Date.now()): number {
  const old = ws.db.prepare('DELETE FROM captures WHERE endpoint = ? AND at < ?').run(endpoint, at - capture.retentionDays * DAY_MS).changes;
  const over = keepNewestRows(ws.db, 'captures', endpoint, capture.maxRows);
  return old + over;
}

/** The newest `last` captures of an endpoint (of one model when given), oldest first. */
export function readCaptures(ws: Workspace, endpoint: string, opts: { last: number; model?: string }): CapturedRequest[] {
  const rows = ws.db
    .prepare(`SELECT id, model, variant, at, sha256, label, score, latency_ms, features FROM captures WHERE endpoint = ?${opts.model ? ' AND model = ?' : ''} ORDER BY id DESC LIMIT ?`)
    .all(...(opts.model ? [endpoint, opts.model, opts.last] : [endpoint, opts.last])) as Array<Omit<Row, 'endpoint' | 'image'> & { id: number }>;
  return rows.reverse().map((r) => ({
    id: r.id,
    model: r.model,
    variant: r.variant,
    at: r.at,
    sha256: r.sha256,
    label: r.label,
    score: r.score,
    latencyMs: r.latency_ms,
    ...(r.features ? { features: new Float32Array(r.features.buffer.slice(r.features.byteOffset, r.features.byteOffset + r.features.byteLength)) } : {}),
  }));
}

/** The models whose answers an endpoint captured with features (each variant's, and those before a rollout), with the id of each one's newest capture. */
export function capturedModels(ws: Workspace, endpoint: string): Array<{ model: string; newest: number }> {
  return ws.db.prepare('SELECT model, MAX(id) AS newest FROM captures WHERE endpoint = ? AND features IS NOT NULL GROUP BY model ORDER BY newest DESC').all(endpoint) as Array<{ model: string; newest: number }>;
}

/** Captures stored for an endpoint, and how many hold the image. */
export function captureCounts(ws: Workspace, endpoint: string): { rows: number; images: number } {
  const r = ws.db.prepare('SELECT COUNT(*) AS rows, COUNT(image) AS images FROM captures WHERE endpoint = ?').get(endpoint) as { rows: number; images: number };
  return r;
}
