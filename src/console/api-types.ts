/**
 * Response types of the console API that the pages read too: a type-only module (no imports, no
 * code), so the server and the front end (src/console/web, bundled by esbuild) share one
 * definition instead of re-declaring them by hand.
 */

export interface PhaseProgress {
  phase: string;
  done: number;
  total: number;
  detail?: string;
}

/** The hyperparameters the jobs table and the comparison show, as the job set them. */
export interface KeySettings {
  head?: string;
  lr?: number;
  batchSize?: number;
  epochs?: number;
  augment?: number;
  weightDecay?: number;
  labelSmoothing?: number;
  optimizer?: string;
}

/** One row of the jobs table. */
export interface JobSummary {
  id: string;
  kind: string;
  status: string;
  createdAt: string;
  updatedAt: string;
  dataset?: string;
  backbone?: string;
  model?: string;
  /** training jobs: key hyperparameters; tuning jobs: the search's strategy and trial count are in `tune` */
  settings: KeySettings;
  /** what the job optimised, by name: a training job's valid top-1, a tuning job's objective (best so far) */
  objective?: { name: string; direction: 'maximize' | 'minimize'; value: number | null };
  seconds?: number;
  error?: string;
  managed: boolean;
  progress?: PhaseProgress[];
  tune?: { trials: number; finished: number; best: number | null; objective: string };
}

/** One point of an endpoint's traffic chart: rates over the interval that ends at `t`. */
export interface TrafficPoint {
  /** ms since epoch */
  t: number;
  /** answered invocations per second (any status) */
  rps: number;
  /** latency quantiles in ms over the interval; null without traffic */
  p50: number | null;
  p99: number | null;
  /** invocations answered with an error (4xx/5xx) other than 429, per second */
  errorsPerS: number;
  /** invocations refused with 429 (throttled, rate-limited, queue full), per second */
  throttledPerS: number;
}

export interface Traffic {
  /** a point every 2 s while someone watches, the last 5 minutes */
  points: TrafficPoint[];
  /** a point every 30 s, the last hour (sampled whether or not anyone watches) */
  history: TrafficPoint[];
  error?: string;
}

export interface LogLine {
  /** ms since epoch */
  t: number;
  level: 'debug' | 'info' | 'warn' | 'error';
  /** the message with its fields, secrets redacted */
  text: string;
}

/** Recent log lines of the daemon and of each of an endpoint's replicas, newest last. */
export interface EndpointLogs {
  /** null when the caller may not read the daemon's log (console:Read on daemon/logs) */
  daemon: LogLine[] | null;
  replicas: Array<{ id: string; state: string; lines: LogLine[] }>;
  /** lines kept per source */
  keep: number;
}

export interface EpochPoint {
  epoch: number;
  trainLoss: number;
  trainTop1: number;
  validLoss: number;
  validTop1: number;
}

/** One run of a comparison: a training job, reached by its id or by a model version it registered. */
export interface CompareRun {
  /** what was asked for: a job id or a model reference */
  ref: string;
  job?: string;
  model?: string;
  dataset?: string;
  backbone?: string;
  settings: KeySettings;
  metrics: { validTop1?: number; validLoss?: number; testTop1?: number; testTop5?: number; ece?: number; seconds?: number };
  bestEpoch?: number;
  history: EpochPoint[];
}

export interface FunctionInvocation {
  ts: string;
  status: number;
  principal?: string;
  keyId?: string;
  coldStart: boolean;
  durationMs?: number;
  requestId?: string;
  /** the error message answered to the caller (4xx/5xx), as the caller saw it */
  error?: string;
}

/** GET /api/endpoints/NAME/shadow/stream: the shadow's comparison with the primary (the serving area's ShadowReport). */
export interface ShadowLatency {
  answered: number;
  errors: number;
  errorCodes: Record<string, number>;
  p50Ms: number | null;
  p95Ms: number | null;
  p99Ms: number | null;
}

export interface ShadowReportView {
  endpoint: string;
  shadow: { model: string; percent: number; instances: number } | null;
  active: boolean;
  primaryModels: string[];
  requests: number;
  agreement: number | null;
  mirrored: number;
  dropped: number;
  since: string | null;
  primary: ShadowLatency;
  shadowLatency: ShadowLatency;
  classes: Array<{ label: string; requests: number; disagreements: number; rate: number; shadowSaid: Array<{ label: string; count: number }> }>;
}

/** GET /api/endpoints/NAME/drift: the endpoint's capture setting and its stored drift checks, newest first (the housekeeping area's DriftResult, in part). */
export interface DriftView {
  capture: { percent: number; retentionDays: number; maxRows: number; images: boolean } | null;
  captures: number;
  results: Array<{ at: string; model: string; captures: number; mmd: number; threshold: number; pValue: number; drifted: boolean; classShift: number; classShiftThreshold: number; classShifted: boolean; meanConfidence: number; heldOutConfidence: number | null; confidenceThreshold: number | null; confidenceDropped: boolean; alarm: boolean }>;
}
