import { z } from 'zod';
import { notFound, Errors } from '../core/index.js';
import { ENDPOINT_DEVICES, PRECISIONS } from '../inference/index.js';
import { getModel } from '../registry/index.js';
import { keepNewestRows, now, type Workspace } from '../store/index.js';
import type { ScalingPolicy } from './autoscaler.js';

const NAME = /^[a-z0-9][a-z0-9-]{0,62}$/;
const VARIANT = /^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$/;
export const PRIMARY_VARIANT = 'primary';

const VariantSchema = z.object({
  name: z.string().regex(VARIANT, 'variant names use letters, digits, dot, dash and underscore'),
  /** NAME, NAME@VERSION or NAME:TAG; stored resolved to NAME@VERSION */
  model: z.string().min(1),
  weight: z.number().positive().max(1_000_000).default(1),
});

/**
 * A shadow variant: a second model that gets a copy of `percent` of the live requests after the
 * primary answered; its answers are compared, never returned.
 */
const ShadowSchema = z.object({
  /** NAME, NAME@VERSION or NAME:TAG; stored resolved to NAME@VERSION */
  model: z.string().min(1),
  /** default 100 */
  percent: z.number().min(0.1).max(100).optional(),
  /** default 1 */
  instances: z.number().int().min(1).max(64).optional(),
});
export const SHADOW_VARIANT = 'shadow';

/**
 * Data capture: a share of the requests recorded (image hash, a projection of the backbone
 * features, top-1 and confidence, variant, latency), for drift checks. Off unless set.
 */
const CaptureSchema = z.object({
  /** share of requests captured, 0.1..100 */
  percent: z.number().min(0.1).max(100),
  /** rows older than this are deleted; default 30 */
  retentionDays: z.number().min(0.001).max(3650).optional(),
  /** the newest rows kept; default 100,000 */
  maxRows: z.number().int().min(10).max(10_000_000).optional(),
  /** store the images themselves too (privacy: off by default) */
  images: z.boolean().optional(),
});

export interface Capture {
  percent: number;
  retentionDays: number;
  maxRows: number;
  images: boolean;
}

/** Settings that are not per variant; each is optional in an update. */
const SettingsSchema = z.object({
  instances: z.number().int().min(0).max(64),
  min: z.number().int().min(0).max(64),
  max: z.number().int().min(1).max(64),
  targetConcurrency: z.number().positive().max(10_000).nullable(),
  targetInvocationsPerInstance: z.number().positive().max(10_000_000).nullable(),
  /** asynchronous requests stored (queued or running) per replica that an autoscaled endpoint scales to */
  targetBacklogPerInstance: z.number().positive().max(1_000_000),
  scaleOutCooldownS: z.number().min(0).max(3600),
  scaleInCooldownS: z.number().min(0).max(86_400),
  maxBatch: z.number().int().min(1).max(256),
  maxDelayMs: z.number().min(0).max(1000),
  maxInFlight: z.number().int().min(1).max(10_000),
  timeoutMs: z.number().int().min(100).max(600_000),
  device: z.enum(ENDPOINT_DEVICES),
  /** a float model's arithmetic on a GPU: auto (fp16 where it measured faster and close), fp32 or fp16 (docs/GPU.md) */
  precision: z.enum(PRECISIONS),
});

export const CreateEndpointSchema = SettingsSchema.partial().extend({
  name: z.string().regex(NAME, 'endpoint names use lower-case letters, digits and dashes (up to 63 characters)'),
  variants: z.array(VariantSchema).min(1).max(8),
  shadow: ShadowSchema.nullable().optional(),
  capture: CaptureSchema.nullable().optional(),
});
export type CreateEndpointInput = z.input<typeof CreateEndpointSchema>;

export const UpdateEndpointSchema = SettingsSchema.partial().extend({
  /** variants to add or replace, by name */
  variants: z.array(VariantSchema.partial({ model: true, weight: true })).max(8).optional(),
  removeVariants: z.array(z.string()).max(8).optional(),
  /** a shadow to start or change (the model may be left out to change its share), or null to stop it */
  shadow: ShadowSchema.partial().nullable().optional(),
  /** capture to start or change (percent may be left out to change the bounds), or null to stop it */
  capture: CaptureSchema.partial().nullable().optional(),
});
export type UpdateEndpointInput = z.input<typeof UpdateEndpointSchema>;

export interface Variant {
  name: string;
  /** NAME@VERSION */
  model: string;
  weight: number;
}

export interface Shadow {
  /** NAME@VERSION */
  model: string;
  /** share of requests mirrored, 0.1..100 */
  percent: number;
  instances: number;
}

export type EndpointSpec = z.output<typeof SettingsSchema> & { name: string; variants: Variant[]; shadow: Shadow | null; capture: Capture | null };

export interface Endpoint {
  spec: EndpointSpec;
  /** replicas wanted per variant (the autoscaler changes it) */
  desired: Record<string, number>;
  createdAt: string;
  updatedAt: string;
}

export interface EndpointEvent {
  kind: string;
  message: string;
  detail: Record<string, unknown>;
  at: string;
}

// max batch 8 and 2 ms: on CPU, ORT's time per image hardly drops beyond a few images, while
// a longer run or wait holds every request of the batch; a GPU is busy only with bigger batches
// (bench:serve on an H100: 32). Backlog 16 per replica: one replica of an async endpoint works
// through that many at once (perEndpointConcurrency)
const DEFAULTS = { targetBacklogPerInstance: 16, scaleOutCooldownS: 5, scaleInCooldownS: 60, maxDelayMs: 2, maxInFlight: 64, timeoutMs: 30_000, device: 'cpu', precision: 'auto' } as const;
const defaultMaxBatch = (device: string): number => (device === 'cpu' ? 8 : 32);

function parse<T extends z.ZodType>(schema: T, input: unknown): z.output<T> {
  const r = schema.safeParse(input);
  if (r.success) return r.data;
  const issue = r.error.issues[0]!;
  const where = issue.path.length ? `${issue.path.join('.')}: ` : '';
  throw Errors.InvalidRequest(`Invalid endpoint settings: ${where}${issue.message}.`, 'See kennel endpoints create --help.');
}

/** Resolves model references to NAME@VERSION (so a restart never silently changes the model) and checks the scaling settings. */
function finish(ws: Workspace, name: string, variants: Variant[], s: Omit<EndpointSpec, 'name' | 'variants' | 'shadow' | 'capture'>, shadow: Partial<Shadow> & { model: string } | null, capture: Capture | null): EndpointSpec {
  const names = new Set<string>();
  const resolved = variants.map((v) => {
    if (v.name === SHADOW_VARIANT) throw Errors.InvalidRequest(`The variant name ${SHADOW_VARIANT} is reserved for the shadow.`, 'Give a shadow with --shadow MODEL, or name the variant otherwise.');
    if (names.has(v.name)) throw Errors.InvalidRequest(`Variant ${v.name} is given twice.`, 'Give each variant a different name.');
    names.add(v.name);
    const mv = getModel(ws, v.model);
    return { name: v.name, model: `${mv.name}@${mv.version}`, weight: v.weight };
  });
  if (s.targetConcurrency !== null && s.targetInvocationsPerInstance !== null) {
    throw Errors.InvalidRequest('Give either a target concurrency or a target of invocations per instance, not both.', 'Autoscaling tracks one metric.');
  }
  if (s.min > s.max) throw Errors.InvalidRequest(`min (${s.min}) is above max (${s.max}).`, 'Make --min at most --max.');
  if (!(s.min <= s.instances && s.instances <= s.max)) throw Errors.InvalidRequest(`Instances must lie between min and max (min ${s.min}, instances ${s.instances}, max ${s.max}).`, 'Adjust --instances, --min or --max.');
  const autoscaled = s.targetConcurrency !== null || s.targetInvocationsPerInstance !== null;
  if (!autoscaled && s.instances === 0) throw Errors.InvalidRequest('An endpoint with 0 instances needs an autoscaling target to scale from zero.', 'Add --target-concurrency X (and --min 0).');
  if (!autoscaled && s.min !== s.max) throw Errors.InvalidRequest('min and max differ but no autoscaling target is set.', 'Add --target-concurrency X or --target-invocations-per-instance Y, or leave --min/--max out.');
  let resolvedShadow: Shadow | null = null;
  if (shadow) {
    const mv = getModel(ws, shadow.model);
    resolvedShadow = { model: `${mv.name}@${mv.version}`, percent: shadow.percent ?? 100, instances: shadow.instances ?? 1 };
  }
  return { name, variants: resolved, ...s, shadow: resolvedShadow, capture };
}

/** The autoscaling policy of an endpoint, or undefined when it runs a fixed number of replicas. */
export function scalingPolicy(spec: EndpointSpec): ScalingPolicy | undefined {
  const target = spec.targetConcurrency ?? spec.targetInvocationsPerInstance;
  if (target === null) return undefined;
  return { min: spec.min, max: spec.max, metric: spec.targetConcurrency !== null ? 'concurrency' : 'invocations', target, backlogPerInstance: spec.targetBacklogPerInstance, scaleOutCooldownS: spec.scaleOutCooldownS, scaleInCooldownS: spec.scaleInCooldownS };
}

export function planCreate(ws: Workspace, input: unknown): EndpointSpec {
  const { name, variants, shadow, capture, ...i } = parse(CreateEndpointSchema, input);
  const instances = i.instances ?? 1;
  const targetConcurrency = i.targetConcurrency ?? null;
  const targetInvocationsPerInstance = i.targetInvocationsPerInstance ?? null;
  const autoscaled = targetConcurrency !== null || targetInvocationsPerInstance !== null;
  const min = i.min ?? instances;
  const max = i.max ?? (autoscaled ? Math.max(instances, 4) : Math.max(instances, 1));
  const maxBatch = i.maxBatch ?? defaultMaxBatch(i.device ?? DEFAULTS.device);
  return finish(ws, name, variants, { ...DEFAULTS, ...stripUndefined(i), instances, min, max, maxBatch, targetConcurrency, targetInvocationsPerInstance }, shadow ?? null, captureOf(capture ?? null, null, name));
}

/** The spec an update leads to: changed settings, variants added or replaced by name, variants removed. */
export function planUpdate(ws: Workspace, current: EndpointSpec, input: unknown): EndpointSpec {
  const u = parse(UpdateEndpointSchema, input);
  const { variants: changes, removeVariants, shadow: shadowChange, capture: captureChange, ...settings } = u;
  let variants = current.variants.map((v) => ({ ...v }));
  for (const c of changes ?? []) {
    const existing = variants.find((v) => v.name === c.name);
    if (existing) Object.assign(existing, stripUndefined(c));
    else if (!c.model) throw Errors.InvalidRequest(`Variant ${c.name} is new and needs a model.`, 'Write --variant NAME=MODEL[:WEIGHT].');
    else variants.push({ name: c.name, model: c.model, weight: c.weight ?? 1 });
  }
  for (const name of removeVariants ?? []) {
    if (!variants.some((v) => v.name === name)) throw notFound(`Variant ${name} of endpoint ${current.name}`);
    variants = variants.filter((v) => v.name !== name);
  }
  if (variants.length === 0) throw Errors.InvalidRequest('An endpoint needs at least one variant.', 'Delete the endpoint instead: kennel endpoints delete NAME.');
  let shadow = current.shadow ?? null;
  if (shadowChange === null) shadow = null;
  else if (shadowChange) {
    const model = shadowChange.model ?? shadow?.model;
    if (!model) throw Errors.InvalidRequest(`Endpoint ${current.name} has no shadow to change.`, 'Name the shadow model: --shadow MODEL.');
    shadow = { model, percent: shadowChange.percent ?? shadow?.percent ?? 100, instances: shadowChange.instances ?? shadow?.instances ?? 1 };
  }
  const capture = captureChange === undefined ? (current.capture ?? null) : captureOf(captureChange, current.capture ?? null, current.name);
  const { name: _n, variants: _v, shadow: _s, capture: _c, ...old } = current;
  const next = { ...old, ...stripUndefined(settings) };
  // switching the autoscaling metric replaces the other target
  if (settings.targetConcurrency != null) next.targetInvocationsPerInstance = null;
  if (settings.targetInvocationsPerInstance != null) next.targetConcurrency = null;
  const autoscaled = next.targetConcurrency !== null || next.targetInvocationsPerInstance !== null;
  if (!autoscaled && settings.min === undefined && settings.max === undefined) {
    next.min = next.instances;
    next.max = next.instances;
  } else if (settings.instances === undefined) {
    // a new min/max pulls the instance count into range
    next.instances = Math.min(next.max, Math.max(next.min, next.instances));
  }
  return finish(ws, current.name, variants, next, shadow, capture);
}

/** A capture setting with its defaults, changed from `current` (null: off). */
function captureOf(change: Partial<z.output<typeof CaptureSchema>> | null, current: Capture | null, endpoint: string): Capture | null {
  if (change === null) return null;
  const percent = change.percent ?? current?.percent;
  if (percent === undefined) throw Errors.InvalidRequest(`Endpoint ${endpoint} does not capture requests.`, 'Start capturing with --capture PERCENT.');
  return { percent, retentionDays: change.retentionDays ?? current?.retentionDays ?? 30, maxRows: change.maxRows ?? current?.maxRows ?? 100_000, images: change.images ?? current?.images ?? false };
}

function stripUndefined<T extends object>(o: T): { [K in keyof T]: Exclude<T[K], undefined> } {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as { [K in keyof T]: Exclude<T[K], undefined> };
}

interface Row {
  name: string;
  spec: string;
  desired: string;
  created_at: string;
  updated_at: string;
}

// endpoints stored before shadows (capture, backlog targets, precision) existed have none
const specOf = (json: string): EndpointSpec => {
  const spec = JSON.parse(json) as EndpointSpec;
  return { ...spec, shadow: spec.shadow ?? null, capture: spec.capture ?? null, targetBacklogPerInstance: spec.targetBacklogPerInstance ?? DEFAULTS.targetBacklogPerInstance, precision: spec.precision ?? DEFAULTS.precision };
};

const fromRow = (r: Row): Endpoint => ({ spec: specOf(r.spec), desired: JSON.parse(r.desired) as Record<string, number>, createdAt: r.created_at, updatedAt: r.updated_at });

export function findEndpoint(ws: Workspace, name: string): Endpoint | undefined {
  const r = ws.db.prepare('SELECT * FROM endpoints WHERE name = ?').get(name) as Row | undefined;
  return r && fromRow(r);
}

export function getEndpoint(ws: Workspace, name: string): Endpoint {
  const e = findEndpoint(ws, name);
  if (!e) throw notFound(`Endpoint ${name}`, 'List endpoints with kennel endpoints list.');
  return e;
}

export function listEndpoints(ws: Workspace): Endpoint[] {
  return (ws.db.prepare('SELECT * FROM endpoints ORDER BY name').all() as Row[]).map(fromRow);
}

export function insertEndpoint(ws: Workspace, spec: EndpointSpec): Endpoint {
  const t = now();
  const desired = Object.fromEntries(spec.variants.map((v) => [v.name, spec.instances]));
  const r = ws.db.prepare('INSERT OR IGNORE INTO endpoints (name, spec, desired, created_at, updated_at) VALUES (?, ?, ?, ?, ?)').run(spec.name, JSON.stringify(spec), JSON.stringify(desired), t, t);
  if (r.changes === 0) throw Errors.Conflict(`Endpoint ${spec.name} already exists.`, 'Change it with kennel endpoints update, or pick another name.');
  return { spec, desired, createdAt: t, updatedAt: t };
}

export function saveEndpoint(ws: Workspace, spec: EndpointSpec, desired: Record<string, number>): void {
  ws.db.prepare('UPDATE endpoints SET spec = ?, desired = ?, updated_at = ? WHERE name = ?').run(JSON.stringify(spec), JSON.stringify(desired), now(), spec.name);
}

export function saveDesired(ws: Workspace, name: string, desired: Record<string, number>): void {
  ws.db.prepare('UPDATE endpoints SET desired = ? WHERE name = ?').run(JSON.stringify(desired), name);
}

export function removeEndpoint(ws: Workspace, name: string): void {
  ws.db.transaction(() => {
    ws.db.prepare('DELETE FROM endpoints WHERE name = ?').run(name);
    ws.db.prepare('DELETE FROM endpoint_events WHERE endpoint = ?').run(name);
    ws.db.prepare('DELETE FROM shadow_results WHERE endpoint = ?').run(name);
    ws.db.prepare('DELETE FROM shadow_counts WHERE endpoint = ?').run(name);
    ws.db.prepare('DELETE FROM captures WHERE endpoint = ?').run(name);
    ws.db.prepare('DELETE FROM drift_results WHERE endpoint = ?').run(name);
  })();
}

/** Events kept per endpoint; older ones are dropped. */
const EVENTS_KEPT = 500;

export function recordEvent(ws: Workspace, endpoint: string, kind: string, message: string, detail: Record<string, unknown> = {}): void {
  ws.db.prepare('INSERT INTO endpoint_events (endpoint, kind, message, detail, created_at) VALUES (?, ?, ?, ?, ?)').run(endpoint, kind, message, JSON.stringify(detail), now());
  keepNewestRows(ws.db, 'endpoint_events', endpoint, EVENTS_KEPT);
}

export function listEvents(ws: Workspace, endpoint: string, limit = 50): EndpointEvent[] {
  const rows = ws.db.prepare('SELECT kind, message, detail, created_at FROM endpoint_events WHERE endpoint = ? ORDER BY id DESC LIMIT ?').all(endpoint, limit) as Array<{ kind: string; message: string; detail: string; created_at: string }>;
  return rows.reverse().map((r) => ({ kind: r.kind, message: r.message, detail: JSON.parse(r.detail) as Record<string, unknown>, at: r.created_at }));
}
