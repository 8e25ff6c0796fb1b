import { InvalidArgumentError, type Command } from 'commander';
import { ENDPOINT_DEVICES, PRECISIONS, type EndpointDevice, type Precision } from '../../inference/index.js';
import { Errors } from '../../core/index.js';
import type { DriftResult } from '../../housekeeping/index.js';
import { adminRequest, dataPlaneUrl, findDaemon } from '../../server/index.js';
import { openAsyncRequests, PRIMARY_VARIANT, type EndpointDescription, type LatencySummary, type ShadowReport } from '../../serving/index.js';
import { defaultHome } from '../../store/index.js';
import { jsonCommand, table, type CommandContext } from '../output.js';
import { number, oneOf, queueOf } from '../options.js';

interface VariantArg {
  name: string;
  model: string;
  weight?: number;
}

/** NAME=MODEL[:WEIGHT]; MODEL may itself be NAME:TAG, so only a numeric last part is a weight. */
function variantArg(value: string, previous: VariantArg[] = []): VariantArg[] {
  const m = /^([^=]+)=(.+)$/.exec(value);
  if (!m) throw new InvalidArgumentError(`--variant takes NAME=MODEL[:WEIGHT], e.g. canary=dogs@3:10, not "${value}".`);
  const w = /^(.*):(\d+(?:\.\d+)?)$/.exec(m[2]!);
  const v: VariantArg = w ? { name: m[1]!, model: w[1]!, weight: Number(w[2]) } : { name: m[1]!, model: m[2]! };
  if (v.weight !== undefined && !(v.weight > 0)) throw new InvalidArgumentError(`the weight of variant ${v.name} must be above 0.`);
  return [...previous, v];
}

const collect = (value: string, previous: string[] = []) => [...previous, value];

interface SettingsOptions {
  instances?: number;
  min?: number;
  max?: number;
  targetConcurrency?: number;
  targetInvocationsPerInstance?: number;
  targetBacklogPerInstance?: number;
  scaleOutCooldown?: number;
  scaleInCooldown?: number;
  maxBatch?: number;
  maxDelayMs?: number;
  maxInFlight?: number;
  timeoutMs?: number;
  device?: EndpointDevice;
  precision?: Precision;
  wait: boolean;
  json?: boolean;
}

/** Options shared by create and update (jsonCommand adds --json after them). */
function settingsOptions(cmd: Command): Command {
  return cmd
    .option('--instances <n>', 'replicas per variant to start with', number('--instances', { int: true, min: 0, max: 64 }))
    .option('--min <n>', 'fewest replicas per variant (0: scale to zero when idle)', number('--min', { int: true, min: 0, max: 64 }))
    .option('--max <n>', 'most replicas per variant', number('--max', { int: true, min: 1, max: 64 }))
    .option('--target-concurrency <x>', 'autoscale to keep this many in-flight requests per replica', number('--target-concurrency', { min: 0.01 }))
    .option('--target-invocations-per-instance <y>', 'autoscale to keep this many invocations per replica per minute', number('--target-invocations-per-instance', { min: 0.01 }))
    .option('--target-backlog-per-instance <n>', 'with autoscaling: also scale to keep at most this many asynchronous requests queued or running per replica (default 16)', number('--target-backlog-per-instance', { min: 0.01 }))
    .option('--scale-out-cooldown <s>', 'seconds between scale-outs (default 5)', number('--scale-out-cooldown', { min: 0 }))
    .option('--scale-in-cooldown <s>', 'seconds after any scaling before scaling in (default 60)', number('--scale-in-cooldown', { min: 0 }))
    .option('--max-batch <n>', 'largest batch per model run (default 8 on the CPU, 32 on a GPU)', number('--max-batch', { int: true, min: 1, max: 256 }))
    .option('--max-delay-ms <ms>', 'longest a decoded image waits for others still decoding (default 2)', number('--max-delay-ms', { min: 0, max: 1000 }))
    .option('--max-in-flight <n>', 'requests one replica may hold before the endpoint answers 503 (default 64)', number('--max-in-flight', { int: true, min: 1 }))
    .option('--timeout-ms <ms>', 'request deadline (default 30000)', number('--timeout-ms', { int: true, min: 100 }))
    .option('--device <device>', 'cpu, webgpu or cuda (default cpu; docs/GPU.md)', oneOf('--device', ENDPOINT_DEVICES))
    .option('--precision <p>', "a float model's arithmetic on a GPU: auto (fp16 where measured faster and within 2%, its near ties run again in fp32; fp32 on the CPU), fp32 (the same answers as the CPU, up to kernel rounding) or fp16 (fp16's answers alone) (default auto; docs/GPU.md)", oneOf('--precision', PRECISIONS))
    .option('--no-wait', 'return at once instead of waiting for replicas to be ready (or a rollout to finish)');
}

function settingsBody(o: SettingsOptions): Record<string, unknown> {
  // refused here too, so the mistake is caught before the daemon is asked
  if (o.min !== undefined && o.max !== undefined && o.min > o.max) throw Errors.InvalidRequest(`--min ${o.min} is above --max ${o.max}.`, 'Make --min at most --max.');
  const body: Record<string, unknown> = {
    instances: o.instances,
    min: o.min,
    max: o.max,
    targetConcurrency: o.targetConcurrency,
    targetInvocationsPerInstance: o.targetInvocationsPerInstance,
    targetBacklogPerInstance: o.targetBacklogPerInstance,
    scaleOutCooldownS: o.scaleOutCooldown,
    scaleInCooldownS: o.scaleInCooldown,
    maxBatch: o.maxBatch,
    maxDelayMs: o.maxDelayMs,
    maxInFlight: o.maxInFlight,
    timeoutMs: o.timeoutMs,
    device: o.device,
    precision: o.precision,
  };
  return Object.fromEntries(Object.entries(body).filter(([, v]) => v !== undefined));
}

function describeText(d: EndpointDescription, base: string): string {
  const lines = [`${d.name}  ${d.status}  POST ${base}${d.path}`];
  for (const v of d.variants) {
    lines.push(`  variant ${v.name}  ${v.model}  weight ${v.weight} (${(v.traffic * 100).toFixed(0)}% of traffic)  replicas ${v.ready} ready / ${v.desired} wanted`);
    for (const r of v.replicas) lines.push(`    ${r.id}  pid ${r.pid}  ${r.state.padEnd(8)}  ${r.model}  in flight ${r.outstanding}`);
  }
  if (d.shadow) {
    lines.push(`  shadow ${d.shadow.model}  ${d.shadow.percent}% of requests mirrored (answers compared, never returned)  replicas ${d.shadow.ready} ready / ${d.shadow.desired} wanted`);
    for (const r of d.shadow.replicas) lines.push(`    ${r.id}  pid ${r.pid}  ${r.state.padEnd(8)}  ${r.model}  in flight ${r.outstanding}`);
  }
  if (d.spec.capture) {
    const c = d.spec.capture;
    lines.push(`  capture ${c.percent}% of requests (features, top-1, confidence, latency${c.images ? ', images' : ''}), kept ${c.retentionDays} days, at most ${c.maxRows} rows; drift: kennel endpoints drift ${d.name}`);
  }
  const a = d.autoscaling;
  lines.push(
    a
      ? `  autoscaling: ${a.metric === 'concurrency' ? 'in-flight requests' : 'invocations per minute'} per replica, target ${a.target} (asynchronous backlog ${a.backlogPerInstance}), min ${a.min}, max ${a.max}, cooldowns out ${a.scaleOutCooldownS} s / in ${a.scaleInCooldownS} s`
      : `  fixed: ${d.spec.instances} replica(s) per variant`,
  );
  lines.push(`  batching: up to ${d.spec.maxBatch} images, ${d.spec.maxDelayMs} ms max delay; ${d.spec.maxInFlight} in flight per replica; timeout ${d.spec.timeoutMs} ms`);
  if (d.events.length) {
    lines.push('  recent events:');
    for (const e of d.events.slice(-10)) lines.push(`    ${e.at.slice(11, 19)}  ${e.message}`);
  }
  return lines.join('\n');
}

interface ShadowOptions {
  shadow?: string | false;
  shadowPercent?: number;
  shadowInstances?: number;
}

/** --shadow, --shadow-percent, --shadow-instances (and --no-shadow for update). */
function shadowOptions(cmd: Command, update: boolean): Command {
  cmd
    .option('--shadow <ref>', 'a shadow model: gets a copy of live requests after the primary answered; its answers are compared (endpoints shadow-report), never returned')
    .option('--shadow-percent <p>', 'share of requests mirrored to the shadow, 0.1 to 100 (default 100)', number('--shadow-percent', { min: 0.1, max: 100 }))
    .option('--shadow-instances <n>', "the shadow's replicas (default 1; they run at the lowest CPU priority)", number('--shadow-instances', { int: true, min: 1, max: 64 }));
  return update ? cmd.option('--no-shadow', 'stop the shadow (its last report stays readable until another starts)') : cmd;
}

function shadowBody(o: ShadowOptions): Record<string, unknown> {
  if (o.shadow === false) {
    if (o.shadowPercent !== undefined || o.shadowInstances !== undefined) throw Errors.InvalidRequest('--no-shadow cannot be given with --shadow-percent or --shadow-instances.', 'Leave one of them out.');
    return { shadow: null };
  }
  if (o.shadow === undefined && o.shadowPercent === undefined && o.shadowInstances === undefined) return {};
  return { shadow: Object.fromEntries(Object.entries({ model: o.shadow, percent: o.shadowPercent, instances: o.shadowInstances }).filter(([, v]) => v !== undefined)) };
}

interface CaptureOptions {
  capture?: number | false;
  captureRetentionDays?: number;
  captureMaxRows?: number;
  captureImages?: boolean;
}

/** --capture, --capture-retention-days, --capture-max-rows, --capture-images (and --no-capture for update). */
function captureOptions(cmd: Command, update: boolean): Command {
  cmd
    .option('--capture <p>', 'capture this share of requests, 0.1 to 100 (image sha256, a 64-number projection of the backbone features, top-1, confidence, variant, latency) for drift checks (endpoints drift); off by default', number('--capture', { min: 0.1, max: 100 }))
    .option('--capture-retention-days <d>', 'delete captures older than this (default 30)', number('--capture-retention-days', { min: 0.001, max: 3650 }))
    .option('--capture-max-rows <n>', 'keep at most this many captures, the newest (default 100000)', number('--capture-max-rows', { int: true, min: 10, max: 10_000_000 }))
    .option('--capture-images', 'store the captured images themselves too (privacy: off by default; bounded and deleted like the rest)');
  return update
    ? cmd.option('--no-capture-images', 'stop storing images (those stored go with their rows)').option('--no-capture', 'stop capturing (what was captured is kept until its retention ends or the endpoint is deleted)')
    : cmd;
}

function captureBody(o: CaptureOptions): Record<string, unknown> {
  if (o.capture === false) {
    if (o.captureRetentionDays !== undefined || o.captureMaxRows !== undefined || o.captureImages !== undefined) throw Errors.InvalidRequest('--no-capture cannot be given with other --capture options.', 'Leave one of them out.');
    return { capture: null };
  }
  const c = { percent: o.capture, retentionDays: o.captureRetentionDays, maxRows: o.captureMaxRows, images: o.captureImages };
  if (Object.values(c).every((v) => v === undefined)) return {};
  return { capture: Object.fromEntries(Object.entries(c).filter(([, v]) => v !== undefined)) };
}

function driftText(r: DriftResult): string {
  const pct = (x: number) => `${(x * 100).toFixed(1)}%`;
  return [
    `${r.endpoint}: ${r.alarm ? 'DRIFT' : 'no drift'}  (${r.captures} captured requests of ${r.model}, ${r.window.from} .. ${r.window.to}, against ${r.reference.rows} training images of ${r.reference.dataset})`,
    `  features  MMD^2 ${r.mmd.toPrecision(3)}  threshold ${r.threshold.toPrecision(3)} (permutation baseline, alpha ${r.alpha})  p ${r.pValue.toFixed(3)}  ${r.drifted ? 'drifted' : 'ok'}`,
    `  classes   shift ${r.classShift.toFixed(3)}  threshold ${r.classShiftThreshold.toFixed(3)}  ${r.classShifted ? 'shifted' : 'ok'}`,
    r.confidenceThreshold === null
      ? `  confidence  mean top-1 ${r.meanConfidence.toFixed(3)} (the model card keeps no held-out confidences to compare with)`
      : `  confidence  mean top-1 ${r.meanConfidence.toFixed(3)}  held-out ${r.heldOutConfidence!.toFixed(3)}  threshold ${r.confidenceThreshold.toFixed(3)}  ${r.confidenceDropped ? 'dropped' : 'ok'}`,
    ...r.classes.slice(0, 5).map((c) => `    ${c.label.padEnd(28)} training ${pct(c.training).padStart(6)}  captured ${pct(c.captured).padStart(6)}`),
  ].join('\n');
}

const ms = (x: number | null): string => (x === null ? '-' : `${x} ms`);
const latencyLine = (what: string, model: string, l: LatencySummary): string =>
  `  ${what.padEnd(7)} ${model}  p50 ${ms(l.p50Ms)}  p95 ${ms(l.p95Ms)}  p99 ${ms(l.p99Ms)}  errors ${l.errors}${l.errors ? ` (${Object.entries(l.errorCodes).map(([c, n]) => `${c} ${n}`).join(', ')})` : ''}`;

function shadowReportText(r: ShadowReport & { active: boolean }): string {
  if (!r.shadow) return `endpoint ${r.endpoint} has no shadow: start one with kennel endpoints update ${r.endpoint} --shadow MODEL`;
  const lines = [
    `${r.endpoint}: shadow ${r.shadow.model}${r.active ? ` on ${r.shadow.percent}% of requests` : ' (stopped; its last comparison)'}`,
    `  compared ${r.requests} requests; mirrored ${r.mirrored}, dropped ${r.dropped} (the shadow was busy) since ${r.since ?? '-'}`,
    `  top-1 agreement ${r.agreement === null ? '-' : `${(r.agreement * 100).toFixed(1)}%`}`,
    latencyLine('primary', r.primaryModels.join(', ') || '-', r.primary),
    latencyLine('shadow', r.shadow.model, r.shadowLatency),
  ];
  const disagreeing = r.classes.filter((c) => c.disagreements > 0).slice(0, 10);
  if (disagreeing.length) {
    lines.push('  most disagreement (primary said -> shadow said):');
    for (const c of disagreeing) lines.push(`    ${c.label}  ${c.disagreements}/${c.requests} (${(c.rate * 100).toFixed(0)}%) -> ${c.shadowSaid.map((x) => `${x.label} ${x.count}`).join(', ')}`);
  }
  if (r.active) lines.push(`  promote it: kennel endpoints promote-shadow ${r.endpoint}`);
  return lines.join('\n');
}

export function registerEndpoints(program: Command): void {
  const cmd = program.command('endpoints').description('Real-time endpoints served by the Kennel daemon (kennel up): create, update (rolling), describe, list, delete; shadow models (shadow-report, promote-shadow); data capture and drift (--capture, drift).');

  /** The daemon's data-plane URL, for human output only. */
  const base = () => dataPlaneUrl(findDaemon(defaultHome()));

  jsonCommand(
    settingsOptions(
      captureOptions(shadowOptions(cmd
        .command('create <name>')
        .description('Deploy a model behind POST /endpoints/NAME/invocations. Waits until its replicas are ready. Creating an endpoint that exists with the same settings changes nothing; other settings are an error (use endpoints update).')
        .requiredOption('--model <ref>', 'model of the primary variant: NAME, NAME@VERSION or NAME:TAG')
        .option('--weight <w>', `traffic weight of the primary variant (default 1)`, number('--weight', { min: 0.0001 }))
        .option('--variant <name=model[:weight]>', 'another variant sharing the traffic by weight (A/B, canary); repeatable', variantArg), false), false),
    ),
    {
      action: async ({ opts: o }: CommandContext<SettingsOptions & ShadowOptions & CaptureOptions & { model: string; weight?: number; variant?: VariantArg[] }>, name: string) => {
        const body = { name, variants: [{ name: PRIMARY_VARIANT, model: o.model, weight: o.weight }, ...(o.variant ?? [])], ...settingsBody(o), ...shadowBody(o), ...captureBody(o) };
        return { name, d: await adminRequest<EndpointDescription>(defaultHome(), 'POST', `/v1/endpoints?wait=${o.wait}`, body) };
      },
      json: ({ d }) => ({ ...d, unchanged: d.unchanged ?? false }),
      human: ({ name, d }) => `${d.unchanged ? `endpoint ${name} already exists with these settings: nothing changed\n` : ''}${describeText(d, base())}`,
    },
  );

  jsonCommand(
    settingsOptions(
      captureOptions(shadowOptions(cmd
        .command('update <name>')
        .description('Change an endpoint. A new model rolls out replica by replica: new replicas pass a readiness check before they get traffic, old ones drain their in-flight requests.')
        .option('--model <ref>', 'new model of the primary variant')
        .option('--weight <w>', 'traffic weight of the primary variant', number('--weight', { min: 0.0001 }))
        .option('--variant <name=model[:weight]>', 'add or change a variant; repeatable', variantArg)
        .option('--remove-variant <name>', 'remove a variant; repeatable', collect), true), true),
    ),
    {
      action: ({ opts: o }: CommandContext<SettingsOptions & ShadowOptions & CaptureOptions & { model?: string; weight?: number; variant?: VariantArg[]; removeVariant?: string[] }>, name: string) => {
        const variants: Array<Partial<VariantArg> & { name: string }> = [...(o.variant ?? [])];
        if (o.model !== undefined || o.weight !== undefined) variants.unshift({ name: PRIMARY_VARIANT, model: o.model, weight: o.weight });
        const body = { ...settingsBody(o), ...shadowBody(o), ...captureBody(o), ...(variants.length ? { variants } : {}), ...(o.removeVariant ? { removeVariants: o.removeVariant } : {}) };
        return adminRequest<EndpointDescription>(defaultHome(), 'PATCH', `/v1/endpoints/${encodeURIComponent(name)}?wait=${o.wait}`, body);
      },
      human: (d) => describeText(d, base()),
    },
  );

  jsonCommand(cmd.command('describe <name>').description('Show an endpoint: variants, replicas (pid, state), autoscaling and recent events.'), {
    action: (_ctx, name: string) => adminRequest<EndpointDescription>(defaultHome(), 'GET', `/v1/endpoints/${encodeURIComponent(name)}`),
    human: (d) => describeText(d, base()),
  });

  jsonCommand(cmd.command('shadow-report <name>').description("Compare an endpoint's shadow with its primary on the mirrored requests: top-1 agreement, disagreement per class, latency percentiles and errors of both, requests dropped because the shadow was busy."), {
    action: (_ctx, name: string) => adminRequest<ShadowReport & { active: boolean }>(defaultHome(), 'GET', `/v1/endpoints/${encodeURIComponent(name)}/shadow-report`),
    human: shadowReportText,
  });

  jsonCommand(
    cmd
      .command('drift <name>')
      .description("Check an endpoint's captured requests (--capture) against its model's training images now: MMD on the backbone features with a permutation-baseline threshold, the predicted-class distribution against training's, mean confidence against the held-out images'. The daemon also checks every 10 minutes (KENNEL_DRIFT_INTERVAL_S), each variant's model on its own, and records drift_detected / drift_cleared events.")
      .option('--last <n>', 'the newest captures compared (default 200)', number('--last', { int: true, min: 2, max: 5000 }))
      .option('--model <ref>', "the captures of this model, NAME@VERSION (another variant's); default: the model that answered the newest capture"),
    {
      action: ({ opts: o }: CommandContext<{ last?: number; model?: string; json?: boolean }>, name: string) => {
        const query = new URLSearchParams({ ...(o.last ? { last: String(o.last) } : {}), ...(o.model ? { model: o.model } : {}) }).toString();
        return adminRequest<DriftResult>(defaultHome(), 'GET', `/v1/endpoints/${encodeURIComponent(name)}/drift${query ? `?${query}` : ''}`);
      },
      human: driftText,
    },
  );

  jsonCommand(
    cmd
      .command('promote-shadow <name>')
      .description("Make the shadow's model the primary's (a rolling update, as endpoints update --model) and stop the shadow, in one step.")
      .option('--no-wait', 'return at once instead of waiting for the rollout to finish'),
    {
      action: ({ opts: o }: CommandContext<{ wait: boolean; json?: boolean }>, name: string) => adminRequest<EndpointDescription>(defaultHome(), 'POST', `/v1/endpoints/${encodeURIComponent(name)}/promote-shadow?wait=${o.wait}`),
      human: (d) => `promoted: the primary now runs ${d.variants.find((v) => v.name === PRIMARY_VARIANT)?.model}\n${describeText(d, base())}`,
    },
  );

  jsonCommand(cmd.command('list').description('List endpoints.'), {
    action: () => adminRequest<{ endpoints: EndpointDescription[] }>(defaultHome(), 'GET', '/v1/endpoints'),
    json: ({ endpoints }) => ({ endpoints }),
    human: ({ endpoints }) =>
      endpoints.length
        ? table(
            ['ENDPOINT', 'STATUS', 'VARIANTS', 'REPLICAS', 'AUTOSCALING'],
            endpoints.map((d) => [
              d.name,
              d.status,
              d.variants.map((v) => `${v.name}=${v.model}`).join(', '),
              d.variants.map((v) => `${v.ready}/${v.desired}`).join(', '),
              d.autoscaling ? `${d.autoscaling.min}-${d.autoscaling.max}` : 'fixed',
            ]),
          )
        : 'no endpoints yet: kennel endpoints create NAME --model MODEL',
  });

  jsonCommand(
    cmd
      .command('requests <name>')
      .description("An endpoint's asynchronous inference requests (kennel invoke --async, InvokeEndpointAsync): queued, running, completed and failed counts, the newest requests and the failure list; --replay or --purge failed ones. Reads the workspace (or the Redis queue the daemon was started with), so it works with the daemon stopped.")
      .option('--limit <n>', 'newest requests to list', number('--limit', { int: true, min: 0, max: 10_000 }), 20)
      .option('--replay [id...]', 'queue failed requests again (these ids, or all): attempts and age start over')
      .option('--purge [id...]', 'delete failed requests (these ids, or all)')
      .option('--queue <url>', 'the Redis URL the daemon keeps asynchronous requests in (kennel up --queue; default $KENNEL_QUEUE)'),
    {
      action: async ({ ws, opts }: CommandContext<{ limit: number; replay?: true | string[]; purge?: true | string[]; queue?: string; json?: boolean }>, name: string) => {
        if (opts.replay && opts.purge) throw Errors.InvalidRequest('Give --replay or --purge, not both.');
        const idsOf = (v: true | string[]) => (v === true ? undefined : v);
        const requests = await openAsyncRequests(ws, { queue: queueOf(opts.queue) });
        try {
          if (opts.replay) return { endpoint: name, replayed: await requests.replay(name, idsOf(opts.replay)) };
          if (opts.purge) return { endpoint: name, purged: await requests.purge(name, idsOf(opts.purge)) };
          return { endpoint: name, ...(await requests.list(name, opts.limit)) };
        } finally {
          await requests.close();
        }
      },
      human: (r) => {
        if ('replayed' in r) return `queued ${r.replayed} failed request${r.replayed === 1 ? '' : 's'} of ${r.endpoint} again; a running daemon runs them within a second`;
        if ('purged' in r) return `deleted ${r.purged} failed request${r.purged === 1 ? '' : 's'} of ${r.endpoint}`;
        const c = r.counts;
        return [
          `${r.endpoint}: ${c.queued} queued, ${c.running} running, ${c.completed} completed, ${c.failed} failed`,
          r.recent.length ? table(['INFERENCE ID', 'STATUS', 'RECEIVED', 'ATTEMPTS', 'INPUT', 'ERROR'], r.recent.map((q) => [q.id, q.status, q.receivedAt, q.attempts, q.input.slice(0, 60), (q.lastError ?? '').slice(0, 100)])) : '',
          r.failed.length ? `replay: kennel endpoints requests ${r.endpoint} --replay [ID...]   delete: kennel endpoints requests ${r.endpoint} --purge [ID...]` : '',
        ]
          .filter(Boolean)
          .join('\n');
      },
    },
  );

  jsonCommand(cmd.command('delete <name>').description('Delete an endpoint: it stops taking requests, in-flight ones finish, replicas stop.'), {
    action: (_ctx, name: string) => adminRequest<{ deleted: string }>(defaultHome(), 'DELETE', `/v1/endpoints/${encodeURIComponent(name)}`),
    human: (r) => `deleted endpoint ${r.deleted}`,
  });
}
