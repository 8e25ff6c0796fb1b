import { useState } from 'preact/hooks';
import type { FunctionInvocation } from '../../api-types';
import { api, useApi, useStream } from '../api';
import { ago, ms, when } from '../format';
import { Badge, Card, Empty, Facts, Field, Form, Link, Loaded, Page, Stat, Table } from '../ui';

interface Stats {
  windowMinutes: number;
  invocations: number;
  coldStarts: number;
  throttles: number;
  errors: number;
  p50Ms: number | null;
  p99Ms: number | null;
}

interface FunctionDef {
  name: string;
  endpoint: string;
  handler: string;
  handlerSource?: string;
  role: string;
  reservedConcurrency?: number;
  provisionedConcurrency: number;
  timeoutMs: number;
  memoryMb: number;
  route?: string;
  revision: number;
  updatedAt: string;
  stats: Stats;
}

interface Detail {
  function: FunctionDef;
  role: { principal: string; policies: Array<{ id: string; document: { statements: Array<{ effect: string; actions: string[]; resources: string[] }> } }> };
  recent: FunctionInvocation[];
}

const reserved = (f: FunctionDef) => (f.reservedConcurrency === undefined ? 'unreserved (100)' : String(f.reservedConcurrency));

export function FunctionsPage() {
  const state = useApi<{ functions: FunctionDef[] }>('/api/functions');
  return (
    <Page title="Functions" subtitle="Functions in front of endpoints, with their concurrency and the last hour of invocations.">
      <Loaded state={state}>
        {({ functions }) => (
          <Card>
            <Table
              caption="Functions"
              rowKey={(f) => f.name}
              rows={functions}
              initialSort={{ key: 'name', dir: 'asc' }}
              empty={
                <Empty title="No functions yet.">
                  <p>Put a function with its own least-privilege role in front of an endpoint:</p>
                  <pre>
                    <code>kennel functions create classify --endpoint dogs --reserved-concurrency 10 --route /v1/classify</code>
                  </pre>
                </Empty>
              }
              columns={[
                { key: 'name', label: 'Name', sort: (f) => f.name, render: (f) => <Link to={`/functions/${f.name}`}>{f.name}</Link> },
                { key: 'endpoint', label: 'Endpoint', sort: (f) => f.endpoint, render: (f) => <Link to={`/endpoints/${f.endpoint}`}>{f.endpoint}</Link> },
                { key: 'reserved', label: 'Reserved', numeric: true, sort: (f) => f.reservedConcurrency ?? 100, render: reserved },
                { key: 'provisioned', label: 'Provisioned', numeric: true, sort: (f) => f.provisionedConcurrency, render: (f) => f.provisionedConcurrency },
                { key: 'calls', label: 'Calls (1 h)', numeric: true, sort: (f) => f.stats.invocations, render: (f) => f.stats.invocations },
                { key: 'cold', label: 'Cold starts', numeric: true, sort: (f) => f.stats.coldStarts, render: (f) => f.stats.coldStarts },
                { key: 'throttles', label: 'Throttles', numeric: true, sort: (f) => f.stats.throttles, render: (f) => (f.stats.throttles ? <Badge tone="warn">{f.stats.throttles}</Badge> : 0) },
                { key: 'p50', label: 'p50', numeric: true, sort: (f) => f.stats.p50Ms, render: (f) => ms(f.stats.p50Ms) },
              ]}
            />
          </Card>
        )}
      </Loaded>
    </Page>
  );
}

export function FunctionPage(props: { name: string }) {
  const { data, error } = useStream<Detail>(`/api/functions/${encodeURIComponent(props.name)}/stream`);
  return (
    <Page title={`Function ${props.name}`} subtitle={<Link to="/functions">← All functions</Link>}>
      <Loaded state={{ data, error }}>{(data) => <FunctionView d={data} />}</Loaded>
    </Page>
  );
}

function FunctionView({ d }: { d: Detail }) {
  const f = d.function;
  const s = f.stats;
  return (
    <>
      <div class="stats">
        <Stat label={`invocations (last ${s.windowMinutes} min)`} value={s.invocations} />
        <Stat label="cold starts" value={s.coldStarts} />
        <Stat label="throttled (429)" value={s.throttles} tone={s.throttles ? 'warn' : undefined} />
        <Stat label="errors" value={s.errors} tone={s.errors ? 'bad' : undefined} />
        <Stat label="p50 / p99" value={`${ms(s.p50Ms)} / ${ms(s.p99Ms)}`} />
      </div>
      <Card title="Configuration">
        <Facts
          items={[
            ['Endpoint', <Link to={`/endpoints/${f.endpoint}`}>{f.endpoint}</Link>],
            ['Handler', f.handler === 'builtin:classify' ? 'built-in classify' : <code class="path">{f.handlerSource ?? f.handler}</code>],
            ['HTTP route', f.route ? <code>{`POST ${f.route}`}</code> : <code>{`POST /functions/${f.name}/invoke`}</code>],
            ['Execution role', <code>{f.role}</code>],
            ['Role policy', d.role.policies.flatMap((p) => p.document.statements.map((st) => `${st.effect} ${st.actions.join(', ')} on ${st.resources.join(', ')}`)).join('; ') || 'none'],
            ['Revision', `${f.revision}, updated ${ago(f.updatedAt)}`],
          ]}
        />
      </Card>
      <Card title="Concurrency and limits">
        <Settings f={f} />
      </Card>
      <Card title="Recent invocations">
        <Table
          caption="Recent invocations"
          rowKey={(r) => `${r.ts}-${r.requestId ?? ''}`}
          rows={d.recent}
          empty={<Empty title={`No invocations in the last ${s.windowMinutes} minutes.`} />}
          columns={[
            { key: 'ts', label: 'When', render: (r) => <span title={when(r.ts)}>{ago(r.ts)}</span> },
            { key: 'status', label: 'Status', numeric: true, render: (r) => <Badge tone={r.status < 400 ? 'ok' : r.status === 429 ? 'warn' : 'bad'}>{r.status}</Badge> },
            { key: 'error', label: 'Error', render: (r) => (r.status < 400 ? '' : <span class="error-text">{r.error ?? `HTTP ${r.status}`}</span>) },
            { key: 'cold', label: 'Start', render: (r) => (r.coldStart ? <Badge tone="info">cold</Badge> : 'warm') },
            { key: 'ms', label: 'Duration', numeric: true, render: (r) => ms(r.durationMs) },
            { key: 'who', label: 'Caller', render: (r) => r.principal ?? <span class="muted">unauthenticated</span> },
            { key: 'id', label: 'Request id', render: (r) => <code>{r.requestId}</code> },
          ]}
        />
      </Card>
    </>
  );
}

function Settings({ f }: { f: FunctionDef }) {
  const [v, setV] = useState({ reserved: f.reservedConcurrency === undefined ? '' : String(f.reservedConcurrency), provisioned: String(f.provisionedConcurrency), timeout: String(f.timeoutMs), memory: String(f.memoryMb) });
  const [saved, setSaved] = useState(false);
  return (
    <Form
      submitLabel="Save"
      onSubmit={async () => {
        setSaved(false);
        await api('PATCH', `/api/functions/${encodeURIComponent(f.name)}`, { reservedConcurrency: v.reserved === '' ? null : Number(v.reserved), provisionedConcurrency: Number(v.provisioned), timeoutMs: Number(v.timeout), memoryMb: Number(v.memory) });
        setSaved(true);
      }}
    >
      <Field label="Reserved concurrency" hint="Empty: unreserved (100). Calls over it get 429 at once; 0 switches the function off.">
        <input type="number" min={0} value={v.reserved} onInput={(e) => setV({ ...v, reserved: e.currentTarget.value })} />
      </Field>
      <Field label="Provisioned concurrency" hint="Instances kept warm ahead of calls (no cold start)">
        <input type="number" min={0} value={v.provisioned} onInput={(e) => setV({ ...v, provisioned: e.currentTarget.value })} />
      </Field>
      <Field label="Timeout (ms)">
        <input type="number" min={100} value={v.timeout} onInput={(e) => setV({ ...v, timeout: e.currentTarget.value })} />
      </Field>
      <Field label="Memory (MB)">
        <input type="number" min={16} value={v.memory} onInput={(e) => setV({ ...v, memory: e.currentTarget.value })} />
      </Field>
      {saved && (
        <p class="ok" role="status">
          Saved: the gateway applies it within 2 s.
        </p>
      )}
    </Form>
  );
}
