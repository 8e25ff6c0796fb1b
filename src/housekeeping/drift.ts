import { Errors, Rng, errorMessage, seedFrom } from '../core/index.js';
import { classShift, confidenceDrop, mmdTest, type Rows } from '../insights/index.js';
import { getModel } from '../registry/index.js';
import { CAPTURE_DIMS, captureProjection, capturedModels, enforceCaptureBounds, getEndpoint, listEndpoints, projectRow, readCaptures, recordEvent } from '../serving/index.js';
import { keepNewestRows, type Workspace } from '../store/index.js';
import { trainingReference, type TrainingReference } from '../training/index.js';

/** Captures with features a drift check needs at least. */
export const MIN_DRIFT_CAPTURES = 20;
/** Drift results kept per endpoint (the newest). */
const RESULTS_KEPT = 2000;

export interface DriftOptions {
  /** the newest captures compared (default 200) */
  last?: number;
  /** the model whose captures are checked (default: the model that answered the newest capture) */
  model?: string;
  /** training rows compared, drawn at random (seeded) when the split is larger (default 300) */
  referenceRows?: number;
  /** permutations of the baseline (default 500) */
  permutations?: number;
  /** false-alarm rate of one check (default 0.01) */
  alpha?: number;
  /** store the result, and record an event when an alarm starts or ends (default true) */
  record?: boolean;
}

export interface ClassShare {
  label: string;
  /** share of the training split */
  training: number;
  /** share of the captured top-1 answers */
  captured: number;
}

export interface DriftResult {
  endpoint: string;
  /** NAME@VERSION whose captures were checked (the model of the newest capture) */
  model: string;
  at: string;
  /** captures compared (with features), and the time span they cover */
  captures: number;
  window: { from: string; to: string };
  /** training rows they were compared with, and where those came from */
  reference: { rows: number; dataset: string; backbone: string };
  /** MMD^2 between training's and the captures' projected features */
  mmd: number;
  /** the (1 - alpha) quantile of MMD^2 over permutations of the pooled samples */
  threshold: number;
  pValue: number;
  /** the MMD is above its threshold: recent inputs do not look like the training images */
  drifted: boolean;
  alpha: number;
  permutations: number;
  /** total-variation distance between the captured top-1 labels and the training split's classes */
  classShift: number;
  /** the (1 - alpha) quantile of the same distance for samples of the training labels of this size */
  classShiftThreshold: number;
  /** class shift above its threshold */
  classShifted: boolean;
  /** the classes whose shares differ most (up to 10) */
  classes: ClassShare[];
  /** mean top-1 probability of the captures */
  meanConfidence: number;
  /** mean top-1 probability of the held-out images at training (null for models whose card lacks it: imported, or trained before it was kept) */
  heldOutConfidence: number | null;
  /** the captures' mean confidence is an alarm below this: the alpha quantile of means of as many held-out draws */
  confidenceThreshold: number | null;
  /** mean confidence below its threshold: the model is less sure of these inputs than of held-out ones */
  confidenceDropped: boolean;
  /** any of the three: drifted, classShifted, confidenceDropped */
  alarm: boolean;
}

export interface DriftReference extends Omit<TrainingReference, 'data'> {
  /** the rows projected with the endpoint's capture projection, as captures are stored */
  projected: Rows;
  /** quantiles of the held-out images' top-1 confidence, from the model card (when it has them) */
  confidence?: number[];
}
type Reference = DriftReference;
const references = new Map<string, Promise<Reference>>();

/** Training's features of `model`, projected with the endpoint's projection (kept in memory per endpoint and model). */
export function driftReference(ws: Workspace, endpoint: string, model: string): Promise<Reference> {
  const key = `${ws.home}\0${endpoint}\0${model}`;
  let r = references.get(key);
  if (!r) {
    r = (async () => {
      const { card } = getModel(ws, model);
      const ref = await trainingReference(ws, model, card.lineage);
      const held = card.metrics?.heldOutConfidence;
      const confidence = Array.isArray(held) && held.length > 1 && held.every((x) => typeof x === 'number') ? (held as number[]) : undefined;
      const p = captureProjection(endpoint, ref.cols);
      const data = new Float32Array(ref.rows * CAPTURE_DIMS);
      for (let i = 0; i < ref.rows; i++) data.set(projectRow(ref.data.subarray(i * ref.cols, (i + 1) * ref.cols), p), i * CAPTURE_DIMS);
      // only the projection is kept in memory (64 numbers a row, not the backbone's whole vector)
      const { data: _full, ...rest } = ref;
      return { ...rest, projected: { data, rows: ref.rows, cols: CAPTURE_DIMS }, ...(confidence ? { confidence } : {}) };
    })();
    references.set(key, r);
    r.catch(() => references.delete(key));
  }
  return r;
}

const counts = (labels: string[]): Record<string, number> => {
  const c: Record<string, number> = {};
  for (const l of labels) c[l] = (c[l] ?? 0) + 1;
  return c;
};

/**
 * Checks an endpoint's captured requests against the training images of the model that
 * answered them: an MMD two-sample test on the endpoint's 64-number projection of the backbone
 * features (threshold from a permutation baseline), the predicted-class distribution against the
 * training split's (total variation, threshold from samples of the training labels of the same
 * size), and the mean confidence against the held-out images' (threshold from draws of their
 * confidences kept in the model card, when it has them). Stored in `drift_results`; an alarm that starts or ends is an
 * endpoint event (`drift_detected`, `drift_cleared`).
 */
export async function checkDrift(ws: Workspace, endpoint: string, opts: DriftOptions = {}): Promise<DriftResult> {
  const spec = getEndpoint(ws, endpoint).spec;
  const last = opts.last ?? 200;
  const newest = readCaptures(ws, endpoint, { last: 1, model: opts.model })[0];
  if (!newest) {
    if (opts.model) throw Errors.NotReady(`Endpoint ${endpoint} has no captured requests answered by ${opts.model}.`, `kennel endpoints describe ${endpoint} lists its variants' models.`);
    throw Errors.NotReady(`Endpoint ${endpoint} has no captured requests.`, spec.capture ? 'Send it requests; captures are written once a second.' : `Start capturing: kennel endpoints update ${endpoint} --capture 10.`);
  }
  const captures = readCaptures(ws, endpoint, { last, model: newest.model }).filter((c) => c.features);
  if (captures.length < MIN_DRIFT_CAPTURES) {
    throw Errors.NotReady(`Endpoint ${endpoint} has ${captures.length} captured requests with features for ${newest.model}; a drift check needs at least ${MIN_DRIFT_CAPTURES}.`, 'Send it more requests, or capture a larger share (--capture). Models imported rather than trained by Kennel give no features.');
  }
  const ref = await driftReference(ws, endpoint, newest.model);
  const seed = seedFrom('drift', endpoint, newest.id);
  const rng = new Rng(seed);
  const n = Math.min(ref.rows, opts.referenceRows ?? 300);
  const pick = n < ref.rows ? rng.shuffle(Array.from({ length: ref.rows }, (_, i) => i)).slice(0, n) : Array.from({ length: n }, (_, i) => i);
  const refRows: Rows = { data: new Float32Array(n * CAPTURE_DIMS), rows: n, cols: CAPTURE_DIMS };
  pick.forEach((r, i) => refRows.data.set(ref.projected.data.subarray(r * CAPTURE_DIMS, (r + 1) * CAPTURE_DIMS), i * CAPTURE_DIMS));
  const cur: Rows = { data: new Float32Array(captures.length * CAPTURE_DIMS), rows: captures.length, cols: CAPTURE_DIMS };
  captures.forEach((c, i) => cur.data.set(c.features!, i * CAPTURE_DIMS));
  const alpha = opts.alpha ?? 0.01;
  const test = mmdTest(refRows, cur, { seed, permutations: opts.permutations ?? 500, alpha });

  // class shift, and its baseline: samples of the training labels as large as the captures
  const trainCounts = counts(ref.labels);
  const capCounts = counts(captures.map((c) => c.label));
  const shift = classShift(trainCounts, capCounts);
  const baseline: number[] = [];
  for (let b = 0; b < 500; b++) baseline.push(classShift(trainCounts, counts(Array.from({ length: captures.length }, () => ref.labels[rng.int(ref.labels.length)]!))));
  baseline.sort((a, b) => a - b);
  const shiftThreshold = baseline[Math.min(baseline.length - 1, Math.ceil((1 - alpha) * baseline.length) - 1)]!;
  const confidence = ref.confidence ? confidenceDrop(captures.map((c) => c.score), ref.confidence, { alpha, rng }) : undefined;
  const share = (c: Record<string, number>, total: number, k: string) => (c[k] ?? 0) / total;
  const classes = [...new Set([...Object.keys(trainCounts), ...Object.keys(capCounts)])]
    .map((label) => ({ label, training: share(trainCounts, ref.labels.length, label), captured: share(capCounts, captures.length, label) }))
    .sort((a, b) => Math.abs(b.captured - b.training) - Math.abs(a.captured - a.training))
    .slice(0, 10);

  const result: DriftResult = {
    endpoint,
    model: newest.model,
    at: new Date().toISOString(),
    captures: captures.length,
    window: { from: new Date(captures[0]!.at).toISOString(), to: new Date(captures[captures.length - 1]!.at).toISOString() },
    reference: { rows: n, dataset: `${ref.dataset}@${ref.datasetVersion}`, backbone: ref.backbone },
    mmd: test.mmd2,
    threshold: test.threshold,
    pValue: test.pValue,
    drifted: test.drift,
    alpha,
    permutations: test.permutations,
    classShift: shift,
    classShiftThreshold: shiftThreshold,
    classShifted: shift > shiftThreshold,
    classes,
    meanConfidence: captures.reduce((s, c) => s + c.score, 0) / captures.length,
    heldOutConfidence: confidence?.referenceMean ?? null,
    confidenceThreshold: confidence?.threshold ?? null,
    confidenceDropped: confidence?.dropped ?? false,
    alarm: test.drift || shift > shiftThreshold || (confidence?.dropped ?? false),
  };
  if (opts.record ?? true) recordDrift(ws, result);
  return result;
}

function recordDrift(ws: Workspace, r: DriftResult): void {
  // each model (variant) has its own alarm: an A/B test's second model does not clear the first's
  const prev = driftHistory(ws, r.endpoint, 1, r.model)[0];
  const alarm = r.alarm;
  const wasAlarm = prev?.alarm ?? false;
  ws.db.transaction(() => {
    ws.db
      .prepare('INSERT INTO drift_results (endpoint, model, at, captures, mmd2, threshold, p_value, drifted, class_shift, mean_confidence, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)')
      .run(r.endpoint, r.model, Date.parse(r.at), r.captures, r.mmd, r.threshold, r.pValue, r.drifted ? 1 : 0, r.classShift, r.meanConfidence, JSON.stringify(r));
    keepNewestRows(ws.db, 'drift_results', r.endpoint, RESULTS_KEPT);
  })();
  const what = [r.drifted ? `MMD ${r.mmd.toPrecision(3)} above its threshold ${r.threshold.toPrecision(3)} (p ${r.pValue.toFixed(3)})` : '', r.classShifted ? `class shift ${r.classShift.toFixed(3)} above ${r.classShiftThreshold.toFixed(3)}` : '', r.confidenceDropped ? `mean confidence ${r.meanConfidence.toFixed(3)} below ${r.confidenceThreshold!.toFixed(3)} (held-out images: ${r.heldOutConfidence!.toFixed(3)})` : ''].filter(Boolean).join('; ');
  const detail = { model: r.model, captures: r.captures, mmd: r.mmd, threshold: r.threshold, pValue: r.pValue, classShift: r.classShift, classShiftThreshold: r.classShiftThreshold, meanConfidence: r.meanConfidence, confidenceThreshold: r.confidenceThreshold, confidenceDropped: r.confidenceDropped };
  if (alarm && !wasAlarm) recordEvent(ws, r.endpoint, 'drift_detected', `drift: the last ${r.captures} captured requests do not look like ${r.model}'s training images: ${what}`, detail);
  if (!alarm && wasAlarm) recordEvent(ws, r.endpoint, 'drift_cleared', `drift cleared: the last ${r.captures} captured requests look like ${r.model}'s training images again`, detail);
}

/** The newest `limit` drift results of an endpoint (of one model when given), newest first. */
export function driftHistory(ws: Workspace, endpoint: string, limit = 100, model?: string): DriftResult[] {
  const rows = ws.db.prepare(`SELECT detail FROM drift_results WHERE endpoint = ?${model ? ' AND model = ?' : ''} ORDER BY id DESC LIMIT ?`).all(...(model ? [endpoint, model, limit] : [endpoint, limit])) as Array<{ detail: string }>;
  return rows.map((row) => {
    // results stored before the confidence test had none of its fields
    const r = JSON.parse(row.detail) as Omit<DriftResult, 'heldOutConfidence' | 'confidenceThreshold' | 'confidenceDropped' | 'alarm'> & Partial<DriftResult>;
    return { ...r, heldOutConfidence: r.heldOutConfidence ?? null, confidenceThreshold: r.confidenceThreshold ?? null, confidenceDropped: r.confidenceDropped ?? false, alarm: r.alarm ?? (r.drifted || r.classShifted) };
  });
}

export interface DriftLog {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

/** The newest drift check of each model an endpoint's captures were answered by, newest first. */
export function latestDriftPerModel(ws: Workspace, endpoint: string): DriftResult[] {
  const models = ws.db.prepare('SELECT model, MAX(id) AS id FROM drift_results WHERE endpoint = ? GROUP BY model ORDER BY id DESC').all(endpoint) as Array<{ model: string }>;
  return models.flatMap(({ model }) => driftHistory(ws, endpoint, 1, model));
}

/**
 * The daemon's drift schedule: every `intervalMs`, for each endpoint that captures requests,
 * deletes captures past retention (endpoints without traffic too) and, for each model that
 * answered captures (every variant's), when new ones came since its last check and there are
 * enough, runs checkDrift.
 */
export class DriftMonitor {
  private readonly timer: NodeJS.Timeout;
  private readonly lastChecked = new Map<string, number>();
  private running: Promise<void> | undefined;

  constructor(
    private readonly ws: Workspace,
    private readonly log: DriftLog,
    readonly intervalMs: number,
    /** writes an endpoint's buffered captures (the serving runtime's flushCapture) */
    private readonly flush: (endpoint: string) => void = () => {},
  ) {
    this.timer = setInterval(() => void this.tick(), intervalMs);
    this.timer.unref();
  }

  /** One round over the endpoints (also what the timer runs); resolves when it is done. */
  tick(): Promise<void> {
    this.running ??= this.round().finally(() => (this.running = undefined));
    return this.running;
  }

  private async round(): Promise<void> {
    for (const e of listEndpoints(this.ws)) {
      const capture = e.spec.capture;
      if (!capture) continue;
      const name = e.spec.name;
      try {
        this.flush(name);
        enforceCaptureBounds(this.ws, name, capture);
        for (const { model, newest } of capturedModels(this.ws, name)) {
          const key = `${name}\0${model}`;
          if (this.lastChecked.get(key) === newest) continue;
          try {
            const r = await checkDrift(this.ws, name, { model });
            this.lastChecked.set(key, newest);
            this.log.info({ endpoint: name, model, mmd: r.mmd, threshold: r.threshold, drifted: r.drifted, classShift: r.classShift, meanConfidence: r.meanConfidence, alarm: r.alarm }, 'drift checked');
          } catch (err) {
            if (!Errors.NotReady.is(err)) throw err; // too few captures of this model yet
          }
        }
      } catch (err) {
        this.log.warn({ endpoint: name, err: errorMessage(err) }, 'drift check failed');
      }
    }
  }

  close(): void {
    clearInterval(this.timer);
  }
}
