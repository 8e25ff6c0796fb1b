import { useState } from 'preact/hooks';
import type { DriftView, EndpointLogs, LogLine, ShadowLatency, ShadowReportView, Traffic, TrafficPoint } from '../../api-types';
import { api, useApi, useStream } from '../api';
import { LineChart } from '../charts';
import { ago, num, pct, when } from '../format';
import { Badge, Card, ConfirmButton, Empty, ErrorBox, Facts, Field, Form, Link, Loaded, Loading, Page, Select, Status, Table } from '../ui';

interface Replica {
  id: string;
  pid?: number;
  state: string;
  model: string;
  generation: number;
  outstanding: number;
  startedAt: string;
  readyAt?: string;
  variant: string;
}

interface Variant {
  name: string;
  model: string;
  weight: number;
  traffic: number;
  desired: number;
  ready: number;
}

interface EndpointEvent {
  kind: string;
  message: string;
  at: string;
}

export interface Endpoint {
  name: string;
  status: string;
  path: string;
  variants: Variant[];
  replicas: Replica[];
  autoscaling: { min: number; max: number; metric: string; target: number } | null;
  spec: { instances: number; maxBatch: number; maxDelayMs: number; timeoutMs: number; device: string; precision: string; capture?: { percent: number } | null };
  /** the shadow variant, when one runs */
  shadow: { model: string; percent: number; desired: number; ready: number } | null;
  events: EndpointEvent[];
  createdAt: string;
  updatedAt: string;
}

/** Model references a variant can serve: every version, and every tag. */
function useModelRefs(): { refs: string[]; error?: Error } {
  const state = useApi<{ models: Array<{ name: string; versions: Array<{ version: number; tags: string[] }> }> }>('/api/models');
  const refs = (state.data?.models ?? []).flatMap((m) => [...m.versions.map((v) => `${m.name}@${v.version}`), ...[...new Set(m.versions.flatMap((v) => v.tags))].map((t) => `${m.name}:${t}`)]);
  return { refs, error: state.error };
}

const SCALING_EVENTS = new Set(['scale_out', 'scale_in']);

export function EndpointsPage() {
  const { data, error } = useStream<{ endpoints: Endpoint[] }>('/api/endpoints/stream');
  const [creating, setCreating] = useState(false);
  return (
    <Page
      title="Endpoints"
      subtitle="Real-time prediction endpoints: replicas, variants and traffic, live."
      actions={
        <button type="button" class="primary" aria-expanded={creating} onClick={() => setCreating(!creating)}>
          Create endpoint
        </button>
      }
    >
      {creating && <CreateEndpoint onCreated={(name) => (location.hash = `#/endpoints/${name}`)} />}
      <Loaded state={{ data, error }}>
        {(data) => (
          <Card>
            <Table
              caption="Endpoints"
              rowKey={(e) => e.name}
              rows={data.endpoints}
              initialSort={{ key: 'name', dir: 'asc' }}
              empty={
                <Empty title="No endpoints yet.">
                  <p>Create one above, or from the command line:</p>
                  <pre>
                    <code>kennel endpoints create dogs --model breeds:latest</code>
                  </pre>
                </Empty>
              }
              columns={[
                { key: 'name', label: 'Name', sort: (e) => e.name, render: (e) => <Link to={`/endpoints/${e.name}`}>{e.name}</Link> },
                { key: 'status', label: 'Status', sort: (e) => e.status, render: (e) => <Status value={e.status} /> },
                { key: 'variants', label: 'Variants', render: (e) => e.variants.map((v) => `${v.name}: ${v.model} (${pct(v.traffic, 0)})`).join(', ') },
                { key: 'replicas', label: 'Ready replicas', numeric: true, render: (e) => `${e.variants.reduce((s, v) => s + v.ready, 0)} / ${e.variants.reduce((s, v) => s + v.desired, 0)}` },
                { key: 'scaling', label: 'Autoscaling', render: (e) => (e.autoscaling ? `${e.autoscaling.min}–${e.autoscaling.max}, ${e.autoscaling.metric} ${e.autoscaling.target}` : 'fixed') },
              ]}
            />
          </Card>
        )}
      </Loaded>
    </Page>
  );
}

function CreateEndpoint(props: { onCreated: (name: string) => void }) {
  const { refs, error } = useModelRefs();
  const [name, setName] = useState('');
  const [chosen, setModel] = useState('');
  // until one is chosen: the production tag, else the latest, else the first version
  const model = chosen || (refs.find((r) => r.endsWith(':production')) ?? refs.find((r) => r.endsWith(':latest')) ?? refs[0] ?? '');
  const [instances, setInstances] = useState('1');
  const [autoscale, setAutoscale] = useState(false);
  const [max, setMax] = useState('4');
  const [target, setTarget] = useState('4');
  if (error) return <ErrorBox error={error} />;
  if (refs.length === 0) {
    return (
      <Card title="Create endpoint">
        <Empty title="There is no model to serve yet: train one first (Jobs page)." />
      </Card>
    );
  }
  return (
    <Card title="Create endpoint">
      <Form
        submitLabel="Create endpoint"
        busyLabel="Creating…"
        onSubmit={async () => {
          const n = Number(instances);
          const body = autoscale
            ? { name, variants: [{ name: 'primary', model }], instances: n, min: Math.min(n, 1), max: Number(max), targetConcurrency: Number(target) }
            : { name, variants: [{ name: 'primary', model }], instances: n };
          await api('POST', '/api/endpoints', body);
          props.onCreated(name);
        }}
      >
        <Field label="Name" hint="Lower-case letters, digits and dashes">
          <input name="endpoint-name" required pattern="[a-z0-9][a-z0-9\-]{0,62}" value={name} onInput={(e) => setName(e.currentTarget.value)} />
        </Field>
        <Field label="Model">
          <Select name="endpoint-model" value={model} options={refs} onChange={setModel} />
        </Field>
        <Field label="Replicas">
          <input type="number" min={autoscale ? 0 : 1} max={64} value={instances} onInput={(e) => setInstances(e.currentTarget.value)} />
        </Field>
        <label class="check">
          <input type="checkbox" checked={autoscale} onChange={(e) => setAutoscale(e.currentTarget.checked)} /> Autoscale on concurrency
        </label>
        {autoscale && (
          <>
            <Field label="Max replicas">
              <input type="number" min={1} max={64} value={max} onInput={(e) => setMax(e.currentTarget.value)} />
            </Field>
            <Field label="Target requests in flight per replica">
              <input type="number" min={0.1} step="any" value={target} onInput={(e) => setTarget(e.currentTarget.value)} />
            </Field>
          </>
        )}
      </Form>
    </Card>
  );
}

export function EndpointPage(props: { name: string }) {
  const { data, error } = useStream<{ endpoint: Endpoint; invokeUrl: string; traffic: Traffic }>(`/api/endpoints/${encodeURIComponent(props.name)}/stream`);
  return (
    <Page
      title={`Endpoint ${props.name}`}
      subtitle={<Link to="/endpoints">← All endpoints</Link>}
      actions={
        data && (
          <>
            <Link class="button" to={`/try/${props.name}`}>
              Try it
            </Link>
            <ConfirmButton
              label="Delete"
              danger
              title={`Delete endpoint ${props.name}?`}
              confirmLabel="Delete endpoint"
              onConfirm={async () => {
                await api('DELETE', `/api/endpoints/${encodeURIComponent(props.name)}`);
                location.hash = '#/endpoints';
              }}
            >
              <p>Its replicas stop after the requests in flight; callers get 404 from then on.</p>
            </ConfirmButton>
          </>
        )
      }
    >
      <Loaded state={{ data, error }}>{(data) => <EndpointView e={data.endpoint} invokeUrl={data.invokeUrl} traffic={data.traffic} />}</Loaded>
    </Page>
  );
}

/** Throughput, latency, and errors with 429s apart, for one range of points. */
function TrafficCharts({ pts, empty }: { pts: TrafficPoint[]; empty: string }) {
  return (
    <div class="grid3">
      <LineChart title="Throughput (requests/s)" x="time" series={[{ name: 'req/s', points: pts.map((p) => ({ x: p.t, y: p.rps })) }]} empty={empty} />
      <LineChart
        title="Latency (ms)"
        x="time"
        yFormat={(v) => num(v, 1)}
        series={[
          { name: 'p50', points: pts.map((p) => ({ x: p.t, y: p.p50 })) },
          { name: 'p99', points: pts.map((p) => ({ x: p.t, y: p.p99 })) },
        ]}
        empty={empty}
      />
      <LineChart
        title="Errors and throttles (per s)"
        x="time"
        series={[
          { name: 'errors/s', points: pts.map((p) => ({ x: p.t, y: p.errorsPerS })) },
          { name: '429/s', points: pts.map((p) => ({ x: p.t, y: p.throttledPerS })) },
        ]}
        empty={empty}
      />
    </div>
  );
}

function EndpointView({ e, invokeUrl, traffic }: { e: Endpoint; invokeUrl: string; traffic: Traffic }) {
  // read once for both forms that pick a model
  const models = useModelRefs();
  const scaling = e.events.filter((x) => SCALING_EVENTS.has(x.kind));
  return (
    <>
      <Card title="Status">
        <Facts
          items={[
            ['Status', <Status value={e.status} />],
            ['Invoke (with an API key)', <code class="path">{`POST ${invokeUrl}`}</code>],
            ['Autoscaling', e.autoscaling ? `${e.autoscaling.min}–${e.autoscaling.max} replicas, target ${e.autoscaling.metric} ${e.autoscaling.target} per replica` : `fixed at ${e.spec.instances} replicas per variant`],
            ['Batching', `up to ${e.spec.maxBatch} images, ${e.spec.maxDelayMs} ms`],
            ['Device', e.spec.device === 'cpu' ? 'CPU' : `${e.spec.device}, precision ${e.spec.precision}`],
            ['Created', when(e.createdAt)],
            ['Updated', ago(e.updatedAt)],
          ]}
        />
      </Card>
      <Card title="Traffic (live, last 5 minutes)">
        {traffic.error && <ErrorBox error={new Error(traffic.error)} />}
        <TrafficCharts pts={traffic.points} empty="Collecting… (a point every 2 s)" />
        <p class="hint">From the data plane's Prometheus histograms (kennel_invocation_duration_seconds); 429s (throttled, rate-limited, queue full) are counted apart from errors. Try it calls go to the replicas directly and are not counted.</p>
      </Card>
      <Card title="Traffic (last hour)">
        <TrafficCharts pts={traffic.history} empty="Collecting… (a point every 30 s, kept for an hour)" />
      </Card>
      <Logs name={e.name} />
      <Card title="Variants and weights">
        <Variants e={e} refs={models.refs} />
      </Card>
      <Card title="Rolling update">
        <RollingUpdate e={e} models={models} />
      </Card>
      <Card title="Shadow">
        <ShadowPanel e={e} refs={models.refs} />
      </Card>
      <Card title="Drift">
        <DriftPanel e={e} />
      </Card>
      <Card title="Replicas">
        <Table
          caption="Replicas"
          rowKey={(r) => r.id}
          rows={e.replicas}
          empty={<Empty title={e.status === 'scaled_to_zero' ? 'Scaled to zero: the next request starts a replica.' : 'No replicas yet.'} />}
          columns={[
            { key: 'id', label: 'Replica', render: (r) => <code>{r.id}</code> },
            { key: 'variant', label: 'Variant', render: (r) => r.variant },
            { key: 'state', label: 'State', render: (r) => <Status value={r.state} /> },
            { key: 'model', label: 'Model', render: (r) => r.model },
            { key: 'pid', label: 'PID', numeric: true, render: (r) => r.pid ?? '—' },
            { key: 'out', label: 'In flight', numeric: true, render: (r) => r.outstanding },
            { key: 'started', label: 'Started', render: (r) => ago(r.startedAt) },
          ]}
        />
      </Card>
      <Card title="Autoscaling events">
        {scaling.length === 0 ? (
          <Empty title={e.autoscaling ? 'No scaling yet: load has stayed within the target.' : 'This endpoint runs a fixed number of replicas.'} />
        ) : (
          <EventList events={scaling} />
        )}
      </Card>
      <Card title="All events">
        <EventList events={e.events} />
      </Card>
    </>
  );
}

function EventList({ events }: { events: EndpointEvent[] }) {
  return (
    <ol class="events">
      {events.map((x, i) => (
        <li key={`${x.at}-${i}`}>
          <time dateTime={x.at} title={when(x.at)}>
            {ago(x.at)}
          </time>{' '}
          <Badge tone={SCALING_EVENTS.has(x.kind) ? 'info' : x.kind.includes('fail') ? 'bad' : 'muted'}>{x.kind.replace(/_/g, ' ')}</Badge> {x.message}
        </li>
      ))}
    </ol>
  );
}

function Variants({ e, refs }: { e: Endpoint; refs: string[] }) {
  const [weights, setWeights] = useState<Record<string, string>>({});
  const [adding, setAdding] = useState({ name: 'canary', model: '', weight: '1' });
  const changed = e.variants.filter((v) => weights[v.name] !== undefined && Number(weights[v.name]) !== v.weight);
  return (
    <>
      <Table
        caption="Variants"
        rowKey={(v) => v.name}
        rows={e.variants}
        columns={[
          { key: 'name', label: 'Variant', render: (v) => v.name },
          { key: 'model', label: 'Model', render: (v) => <Link to={`/models/${v.model.replace('@', '/')}`}>{v.model}</Link> },
          {
            key: 'weight',
            label: 'Weight',
            numeric: true,
            render: (v) => <input class="narrow" type="number" min={0.001} step="any" aria-label={`Weight of ${v.name}`} value={weights[v.name] ?? String(v.weight)} onInput={(ev) => setWeights({ ...weights, [v.name]: ev.currentTarget.value })} />,
          },
          { key: 'traffic', label: 'Traffic', numeric: true, render: (v) => pct(v.traffic, 0) },
          { key: 'ready', label: 'Ready / desired', numeric: true, render: (v) => `${v.ready} / ${v.desired}` },
          {
            key: 'remove',
            label: '',
            render: (v) =>
              e.variants.length > 1 && (
                <ConfirmButton label="Remove" class="small" danger title={`Remove variant ${v.name}?`} confirmLabel="Remove variant" onConfirm={() => api('PATCH', `/api/endpoints/${encodeURIComponent(e.name)}`, { removeVariants: [v.name] })}>
                  <p>Its replicas stop; its traffic goes to the other variants.</p>
                </ConfirmButton>
              ),
          },
        ]}
      />
      {changed.length > 0 && (
        <Form
          submitLabel="Save weights"
          onSubmit={async () => {
            await api('PATCH', `/api/endpoints/${encodeURIComponent(e.name)}`, { variants: changed.map((v) => ({ name: v.name, weight: Number(weights[v.name]) })) });
            setWeights({});
          }}
        >
          <p class="hint">Traffic shares follow the weights at once; no replica restarts.</p>
        </Form>
      )}
      <details class="add-variant">
        <summary>Add a variant (canary or A/B test)</summary>
        <Form
          submitLabel="Add variant"
          busyLabel="Adding…"
          onSubmit={() => api('PATCH', `/api/endpoints/${encodeURIComponent(e.name)}`, { variants: [{ name: adding.name, model: adding.model || refs[0], weight: Number(adding.weight) }] })}
        >
          <Field label="Variant name">
            <input required value={adding.name} onInput={(ev) => setAdding({ ...adding, name: ev.currentTarget.value })} />
          </Field>
          <Field label="Model">
            <Select value={adding.model || refs[0] || ''} options={refs} onChange={(model) => setAdding({ ...adding, model })} />
          </Field>
          <Field label="Weight">
            <input type="number" min={0.001} step="any" value={adding.weight} onInput={(ev) => setAdding({ ...adding, weight: ev.currentTarget.value })} />
          </Field>
        </Form>
      </details>
    </>
  );
}

function RollingUpdate({ e, models }: { e: Endpoint; models: { refs: string[]; error?: Error } }) {
  const { refs, error } = models;
  const [variant, setVariant] = useState(e.variants[0]?.name ?? '');
  const [model, setModel] = useState('');
  const current = e.variants.find((v) => v.name === variant);
  const target = model || refs.find((r) => r !== current?.model) || '';
  if (error) return <ErrorBox error={error} />;
  return (
    <div class="form">
      <p class="hint">Replicas of the new model start first; each old replica drains and stops once a new one is ready, so the endpoint keeps answering.</p>
      <div class="fields">
        <Field label="Variant">
          <Select value={variant} options={e.variants.map((v) => [v.name, `${v.name} (now ${v.model})`])} onChange={setVariant} />
        </Field>
        <Field label="New model">
          <Select name="rollout-model" value={target} options={refs} onChange={setModel} />
        </Field>
      </div>
      <div class="form-foot">
        <ConfirmButton
          label="Start rolling update"
          class="primary"
          disabled={!target || e.status === 'updating'}
          title={`Roll ${e.name}/${variant} to ${target}?`}
          confirmLabel="Start rolling update"
          onConfirm={() => api('PATCH', `/api/endpoints/${encodeURIComponent(e.name)}`, { variants: [{ name: variant, model: target }] })}
        >
          <p>
            Variant <strong>{variant}</strong> moves from {current?.model} to <strong>{target}</strong>, one replica at a time. Progress shows in the events below.
          </p>
        </ConfirmButton>
        {e.status === 'updating' && <Badge tone="info">update in progress</Badge>}
      </div>
    </div>
  );
}

const latencyText = (l: ShadowLatency) => (l.p50Ms === null ? '—' : `p50 ${num(l.p50Ms, 1)} · p95 ${num(l.p95Ms ?? 0, 1)} · p99 ${num(l.p99Ms ?? 0, 1)} ms`);
const errorText = (l: ShadowLatency) => (l.errors ? `${l.errors} (${Object.entries(l.errorCodes).map(([c, n]) => `${c} ${n}`).join(', ')})` : '0');

/** The stored drift checks of the captured requests: MMD against its permutation threshold, class shift, confidence. */
function DriftPanel({ e }: { e: Endpoint }) {
  const { data, error } = useApi<DriftView>(`/api/endpoints/${encodeURIComponent(e.name)}/drift`);
  if (error) return <ErrorBox error={error} />;
  if (!data) return <Loading />;
  if (!data.capture) return <Empty title="Not capturing requests">Start with kennel endpoints update {e.name} --capture 10; the daemon then checks drift every 10 minutes.</Empty>;
  const last = data.results[0];
  // each model (variant) is checked on its own: the charts follow the newest check's model, the badge every model's newest check
  const newestPerModel = data.results.filter((r, i) => data.results.findIndex((x) => x.model === r.model) === i);
  const alarmed = newestPerModel.filter((r) => r.alarm).map((r) => r.model);
  const pts = data.results
    .filter((r) => r.model === last?.model)
    .reverse()
    .map((r) => ({ ...r, t: Date.parse(r.at) }));
  return (
    <>
      <p>
        Capturing {data.capture.percent}% of requests ({data.captures} stored, kept {data.capture.retentionDays} days{data.capture.images ? ', with images' : ''}).{' '}
        {last ? (
          <>
            Last check {ago(last.at)}: {alarmed.length ? <Badge tone="bad">drift: {alarmed.join(', ')}</Badge> : <Badge tone="ok">no drift</Badge>} ({last.captures} requests of {last.model}, p {num(last.pValue, 3)}, mean confidence {num(last.meanConfidence, 3)}){newestPerModel.length > 1 ? `; the charts show ${last.model}, kennel endpoints drift ${e.name} --model M checks another` : ''}
          </>
        ) : (
          'No check yet (one needs 20 captured requests).'
        )}
      </p>
      <div class="grid3">
        <LineChart
          title="Feature drift (MMD²)"
          x="time"
          yFormat={(v) => num(v, 3)}
          series={[
            { name: 'MMD²', points: pts.map((p) => ({ x: p.t, y: p.mmd })), dots: true },
            { name: 'threshold', points: pts.map((p) => ({ x: p.t, y: p.threshold })) },
          ]}
          empty="No drift check yet"
        />
        <LineChart
          title="Class shift (total variation)"
          x="time"
          yFormat={(v) => num(v, 2)}
          series={[
            { name: 'shift', points: pts.map((p) => ({ x: p.t, y: p.classShift })), dots: true },
            { name: 'threshold', points: pts.map((p) => ({ x: p.t, y: p.classShiftThreshold })) },
          ]}
          empty="No drift check yet"
        />
        <LineChart
          title="Mean confidence"
          x="time"
          yMin={0}
          yMax={1}
          yFormat={(v) => num(v, 2)}
          series={[
            { name: 'top-1', points: pts.map((p) => ({ x: p.t, y: p.meanConfidence })), dots: true },
            { name: 'threshold', points: pts.filter((p) => p.confidenceThreshold !== null).map((p) => ({ x: p.t, y: p.confidenceThreshold! })) },
          ]}
          empty="No drift check yet"
        />
      </div>
    </>
  );
}

/**
 * A shadow model on live traffic: start it, watch its comparison with the primary (live, as
 * kennel endpoints shadow-report), promote it or stop it.
 */
function ShadowPanel({ e, refs }: { e: Endpoint; refs: string[] }) {
  const { data: r, error } = useStream<ShadowReportView>(`/api/endpoints/${encodeURIComponent(e.name)}/shadow/stream`);
  const [model, setModel] = useState('');
  const [percent, setPercent] = useState('100');
  const primary = e.variants.find((v) => v.name === 'primary')?.model;
  const target = model || refs.find((x) => x !== primary) || '';
  if (error) return <ErrorBox error={error} />;
  if (!r) return <Loading label="Loading…" />;
  const start = (
    <Form submitLabel="Start shadow" busyLabel="Starting…" onSubmit={() => api('PATCH', `/api/endpoints/${encodeURIComponent(e.name)}`, { shadow: { model: target, percent: Number(percent) } })}>
      <p class="hint">A shadow gets a copy of live requests after the primary answered, at the lowest CPU priority; its answers are compared, never returned.</p>
      <div class="fields">
        <Field label="Shadow model">
          <Select name="shadow-model" value={target} options={refs} onChange={setModel} />
        </Field>
        <Field label="Share of requests (%)">
          <input type="number" name="shadow-percent" min={0.1} max={100} step="any" value={percent} onInput={(ev) => setPercent(ev.currentTarget.value)} />
        </Field>
      </div>
    </Form>
  );
  if (!r.shadow) return start;
  const rows: Array<[string, ShadowLatency, string]> = [
    ['primary', r.primary, r.primaryModels.join(', ') || primary || '—'],
    ['shadow', r.shadowLatency, r.shadow.model],
  ];
  return (
    <>
      <Facts
        items={[
          ['Shadow', `${r.shadow.model}${r.active ? ` on ${r.shadow.percent}% of requests` : ' (stopped: its last comparison)'}`],
          ...(e.shadow ? ([['Shadow replicas', <span id="shadow-replicas">{`${e.shadow.ready}/${e.shadow.desired} ready`}</span>]] as Array<[string, preact.ComponentChildren]>) : []),
          ['Top-1 agreement', <strong id="shadow-agreement">{r.agreement === null ? '—' : pct(r.agreement)}</strong>],
          ['Compared', <span id="shadow-requests">{r.requests}</span>],
          ['Mirrored / dropped (busy)', `${r.mirrored} / ${r.dropped}`],
        ]}
      />
      <Table
        caption="Latency and errors of both"
        rowKey={(x) => x[0]}
        rows={rows}
        columns={[
          { key: 'who', label: 'Answered by', render: (x) => `${x[0]} (${x[2]})` },
          { key: 'latency', label: 'Latency', render: (x) => latencyText(x[1]) },
          { key: 'errors', label: 'Errors', render: (x) => errorText(x[1]) },
        ]}
      />
      <Table
        caption="Disagreement per class (the primary's answer)"
        rowKey={(c) => c.label}
        rows={r.classes.filter((c) => c.disagreements > 0).slice(0, 10)}
        empty={<Empty title={r.requests ? 'The two models agree on every compared request.' : 'No request compared yet.'} />}
        columns={[
          { key: 'label', label: 'Primary said', render: (c) => c.label },
          { key: 'rate', label: 'Disagreement', numeric: true, render: (c) => `${c.disagreements}/${c.requests} (${pct(c.rate)})` },
          { key: 'said', label: 'Shadow said', render: (c) => c.shadowSaid.map((x) => `${x.label} ${x.count}`).join(', ') },
        ]}
      />
      {r.active ? (
        <div class="form-foot">
          <ConfirmButton label="Promote shadow" class="primary" title={`Make ${r.shadow.model} the primary of ${e.name}?`} confirmLabel="Promote" onConfirm={() => api('POST', `/api/endpoints/${encodeURIComponent(e.name)}/promote-shadow`)}>
            <p>
              The primary rolls to <strong>{r.shadow.model}</strong>, one replica at a time, and the shadow stops.
            </p>
          </ConfirmButton>
          <ConfirmButton label="Stop shadow" title={`Stop the shadow of ${e.name}?`} confirmLabel="Stop shadow" onConfirm={() => api('PATCH', `/api/endpoints/${encodeURIComponent(e.name)}`, { shadow: null })}>
            <p>Its last comparison stays here until another shadow starts.</p>
          </ConfirmButton>
        </div>
      ) : (
        start
      )}
    </>
  );
}

const clockTime = (t: number) => new Date(t).toLocaleTimeString('en-GB', { hour12: false });

function LogLines({ lines, label }: { lines: LogLine[]; label: string }) {
  if (!lines.length) return <p class="muted">No lines yet.</p>;
  return (
    <pre class="logs" tabIndex={0} aria-label={label}>
      {lines.slice(-100).map((l, i) => (
        <div key={i} class={l.level}>{`${clockTime(l.t)} ${l.level.toUpperCase().padEnd(5)} ${l.text}`}</div>
      ))}
    </pre>
  );
}

/** The daemon's and each replica's recent log lines, live (secrets are redacted by the daemon). */
function Logs({ name }: { name: string }) {
  const { data, error } = useStream<EndpointLogs>(`/api/endpoints/${encodeURIComponent(name)}/logs/stream`);
  return (
    <Card title="Logs (live)">
      <Loaded state={{ data, error }}>
        {(d) => (
          <>
            {d.replicas.length === 0 && <p class="muted">No replicas are running.</p>}
            {d.replicas.map((r) => (
              <section key={r.id} aria-label={`Replica ${r.id} log`}>
                <h3>
                  Replica {r.id} <Status value={r.state} />
                </h3>
                <LogLines lines={r.lines} label={`Replica ${r.id} log lines`} />
              </section>
            ))}
            <section aria-label="Daemon log">
              <h3>Daemon</h3>
              {d.daemon ? <LogLines lines={d.daemon} label="Daemon log lines" /> : <p class="muted">Reading the daemon's log needs console:Read on daemon/logs.</p>}
            </section>
            <p class="hint">The last {d.keep} lines of each are kept in the daemon's memory (the last 100 are shown); keys, tokens and credentials are redacted.</p>
          </>
        )}
      </Loaded>
    </Card>
  );
}
