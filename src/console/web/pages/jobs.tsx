import { useState } from 'preact/hooks';
import type { JobSummary, KeySettings } from '../../api-types';
import { api, useApi, useStream } from '../api';
import { Bars, LineChart, ParallelCoordinates } from '../charts';
import { DeleteButton } from '../delete';
import { ago, num, pct, seconds, sig, when } from '../format';
import { Badge, Card, ConfirmButton, Empty, ErrorBox, Facts, Field, Form, Link, Loaded, Loading, Page, Progress, Select, Status, Table, type Column } from '../ui';

type ParamValue = number | string;

interface Trial {
  id: number;
  params: Record<string, ParamValue>;
  objective: number | null;
  status: string;
  epochs: number | null;
  seconds: number | null;
  bestEpoch: number | null;
  error?: string;
}

interface Tuning {
  strategy: string;
  earlyStopping: string;
  maxTrials: number;
  objective: { name: string; direction: 'maximize' | 'minimize' };
  trials: Trial[];
  best: { id: number; params: Record<string, ParamValue>; objective: number } | null;
  importance: Array<{ param: string; importance: number }>;
  counts: Record<string, number>;
  model: string | null;
}

interface EpochStats {
  epoch: number;
  trainLoss: number;
  trainTop1: number;
  validLoss: number;
  validTop1: number;
}

interface JobDetail extends JobSummary {
  params: Record<string, unknown>;
  result?: {
    model?: string;
    metrics?: { valid?: { top1?: number; top5?: number; ece?: number }; test?: { top1?: number; top5?: number; ece?: number } };
    history?: EpochStats[];
    bestEpoch?: number;
    rules?: Array<{ rule: string; status: string; severity: string; finding: string; recommendation: string }>;
    registerJob?: string;
  };
  tuning?: Tuning;
  report: boolean;
}

/** An objective's value: accuracies as percentages, losses and ECE as numbers. */
const objective = (name: string, v: number | null) => (/top-?[15]$/.test(name) ? pct(v) : sig(v));

/** The key hyperparameters in a few words, e.g. "mlp, lr 0.001, batch 64, 30 epochs, augment 2" (the rest is on the job and compare pages). */
export function settingsText(s: KeySettings): string {
  // learning rate, batch size, epochs and optimizer only steer the minibatch heads; the probe heads ignore them
  const minibatch = s.head === undefined || s.head === 'mlp' || s.head === 'minibatch';
  const parts = [s.head, minibatch && s.lr !== undefined && `lr ${sig(s.lr)}`, minibatch && s.batchSize !== undefined && `batch ${s.batchSize}`, minibatch && s.epochs !== undefined && `${s.epochs} epochs`, s.augment ? `augment ${s.augment}` : undefined, minibatch && s.optimizer && s.optimizer !== 'adamw' ? s.optimizer : undefined];
  return parts.filter(Boolean).join(', ');
}

function duration(j: JobSummary): string {
  if (j.seconds !== undefined) return seconds(j.seconds);
  const end = j.status === 'running' ? Date.now() : Date.parse(j.updatedAt);
  return seconds((end - Date.parse(j.createdAt)) / 1000);
}

function ProgressCell({ j }: { j: JobSummary }) {
  if (j.status !== 'running') return <>{j.kind === 'tune' && j.tune ? `${j.tune.finished}/${j.tune.trials} trials` : ''}</>;
  const p = j.progress?.at(-1);
  if (p) return <Progress label={p.phase} done={p.done} total={p.total} />;
  if (j.tune) return <Progress label="trials" done={j.tune.finished} total={j.tune.trials} />;
  return <span class="muted">{j.managed ? 'starting…' : 'running in another process'}</span>;
}

export function JobsPage() {
  const { data, error } = useStream<{ jobs: JobSummary[] }>('/api/jobs/stream');
  const [form, setForm] = useState<'train' | 'tune' | null>(null);
  const [picked, setPicked] = useState<string[]>([]);
  const toggle = (id: string) => setPicked(picked.includes(id) ? picked.filter((x) => x !== id) : [...picked, id]);
  const columns: Column<JobSummary>[] = [
    {
      key: 'pick',
      label: 'Compare',
      render: (j) => (j.kind === 'train' && j.status === 'completed' ? <input type="checkbox" aria-label={`Compare ${j.id}`} checked={picked.includes(j.id)} onChange={() => toggle(j.id)} /> : null),
    },
    { key: 'id', label: 'Job', sort: (j) => j.id, render: (j) => <Link to={`/jobs/${j.id}`}>{j.id}</Link> },
    { key: 'status', label: 'Status', sort: (j) => j.status, render: (j) => <Status value={j.status} /> },
    { key: 'progress', label: 'Progress', render: (j) => <ProgressCell j={j} /> },
    {
      key: 'objective',
      label: 'Objective (best)',
      numeric: true,
      sort: (j) => j.objective?.value,
      render: (j) => (j.objective?.value != null ? <span title={`${j.objective.direction} ${j.objective.name}`}>{`${j.objective.name} ${objective(j.objective.name, j.objective.value)}`}</span> : '—'),
    },
    { key: 'dataset', label: 'Dataset', sort: (j) => j.dataset, render: (j) => j.dataset ?? '—' },
    { key: 'model', label: 'Model', sort: (j) => j.model, render: (j) => (j.model ? <Link to={`/models/${j.model.replace('@', '/')}`}>{j.model}</Link> : '—') },
    { key: 'backbone', label: 'Backbone', sort: (j) => j.backbone, render: (j) => j.backbone ?? '—' },
    { key: 'settings', label: 'Hyperparameters', render: (j) => (j.kind === 'tune' && j.tune ? `search of ${j.tune.trials} trials` : settingsText(j.settings) || '—') },
    { key: 'started', label: 'Started', sort: (j) => j.createdAt, render: (j) => <span title={when(j.createdAt)}>{ago(j.createdAt)}</span> },
    { key: 'time', label: 'Time', numeric: true, render: duration },
  ];
  return (
    <Page
      title="Jobs"
      subtitle="Training, tuning and batch transform jobs, live. Jobs started here run in the daemon and can be cancelled."
      actions={
        <>
          <button type="button" class="primary" aria-expanded={form === 'train'} onClick={() => setForm(form === 'train' ? null : 'train')}>
            New training job
          </button>
          <button type="button" aria-expanded={form === 'tune'} onClick={() => setForm(form === 'tune' ? null : 'tune')}>
            New tuning job
          </button>
        </>
      }
    >
      {form && <NewJob kind={form} onDone={() => setForm(null)} />}
      <div class="compare-pick">
        <a class={`button${picked.length < 2 ? ' disabled' : ''}`} aria-disabled={picked.length < 2} href={picked.length >= 2 ? `#/compare/${picked.map(encodeURIComponent).join(',')}` : undefined}>
          Compare selected ({picked.length})
        </a>
        <span class="hint">Tick two or more finished training jobs to overlay their curves and put their settings and metrics side by side.</span>
      </div>
      <Loaded state={{ data, error }}>
        {(data) => (
          <Card>
            <Table
              caption="Jobs"
              rowKey={(j) => j.id}
              rows={data.jobs}
              columns={columns}
              initialSort={{ key: 'started', dir: 'desc' }}
              empty={
                <Empty title="No jobs yet.">
                  <p>Start a training job above, or from the command line:</p>
                  <pre>
                    <code>kennel train --dataset breeds --backbone mobilenetv2-12-int8</code>
                  </pre>
                </Empty>
              }
            />
          </Card>
        )}
      </Loaded>
    </Page>
  );
}

function NewJob(props: { kind: 'train' | 'tune'; onDone: () => void }) {
  const datasets = useApi<{ datasets: Array<{ name: string; latest: number }> }>('/api/datasets');
  const backbones = useApi<{ backbones: Array<{ id: string; installed: boolean }> }>('/api/backbones');
  const [values, setValues] = useState<Record<string, string>>({});
  const put = (k: string) => (v: string) => setValues({ ...values, [k]: v });
  const set = (k: string) => (e: { currentTarget: { value: string } }) => put(k)(e.currentTarget.value);
  const installed = backbones.data?.backbones.filter((b) => b.installed) ?? [];
  const dataset = values.dataset ?? datasets.data?.datasets[0]?.name ?? '';
  const backbone = values.backbone ?? installed[0]?.id ?? '';
  if (datasets.error) return <ErrorBox error={datasets.error} />;
  if (backbones.error) return <ErrorBox error={backbones.error} />;
  if (!datasets.data || !backbones.data) return <Loading />;
  if (datasets.data.datasets.length === 0 || installed.length === 0) {
    return (
      <Card title={props.kind === 'train' ? 'New training job' : 'New tuning job'}>
        <Empty title={datasets.data.datasets.length === 0 ? 'There is no dataset to train on yet.' : 'No backbone is installed yet.'}>
          <pre>
            <code>{datasets.data.datasets.length === 0 ? 'kennel data import FOLDER --name NAME' : 'kennel backbones add ../shared/models/mobilenetv2-12-int8.onnx --name mobilenetv2-12-int8'}</code>
          </pre>
        </Empty>
      </Card>
    );
  }
  const number = (k: string) => (values[k] ? Number(values[k]) : undefined);
  const submit = async () => {
    const options =
      props.kind === 'train'
        ? { dataset, backbone, name: values.name || undefined, epochs: number('epochs'), lr: number('lr'), head: values.head || undefined, augment: number('augment') }
        : { dataset, backbone, maxTrials: number('maxTrials') ?? 8, strategy: values.strategy || undefined, earlyStopping: values.earlyStopping || undefined, register: values.register || undefined };
    const { job } = await api<{ job: string }>('POST', '/api/jobs', { kind: props.kind, options });
    props.onDone();
    location.hash = `#/jobs/${job}`;
  };
  return (
    <Card title={props.kind === 'train' ? 'New training job' : 'New tuning job'}>
      <Form onSubmit={submit} submitLabel={props.kind === 'train' ? 'Start training' : 'Start tuning'} busyLabel="Starting…">
        <Field label="Dataset">
          <Select value={dataset} options={datasets.data.datasets.map((d) => [d.name, `${d.name} (v${d.latest})`])} onChange={put('dataset')} />
        </Field>
        <Field label="Backbone">
          <Select value={backbone} options={installed.map((b) => b.id)} onChange={put('backbone')} />
        </Field>
        {props.kind === 'train' ? (
          <>
            <Field label="Model name" hint="Default: the dataset's name">
              <input value={values.name ?? ''} onInput={set('name')} pattern="[A-Za-z0-9][A-Za-z0-9._\-]{0,63}" />
            </Field>
            <Field label="Epochs">
              <input type="number" min={1} max={10000} placeholder="30" value={values.epochs ?? ''} onInput={set('epochs')} />
            </Field>
            <Field label="Learning rate">
              <input type="number" step="any" min={0} placeholder="0.001" value={values.lr ?? ''} onInput={set('lr')} />
            </Field>
            <Field label="Head">
              <Select value={values.head ?? ''} options={[['', 'auto (default)'], 'linear', 'prototype', 'mlp', 'minibatch']} onChange={put('head')} />
            </Field>
            <Field label="Augmented views" hint="Random crops and flips per training image">
              <input type="number" min={0} max={32} placeholder="0" value={values.augment ?? ''} onInput={set('augment')} />
            </Field>
          </>
        ) : (
          <>
            <Field label="Trials">
              <input type="number" min={1} max={10000} placeholder="8" value={values.maxTrials ?? ''} onInput={set('maxTrials')} />
            </Field>
            <Field label="Strategy">
              <Select value={values.strategy ?? ''} options={[['', 'bayesian (default)'], 'random', 'grid']} onChange={put('strategy')} />
            </Field>
            <Field label="Early stopping">
              <Select value={values.earlyStopping ?? ''} options={[['', 'none (default)'], 'median', 'asha']} onChange={put('earlyStopping')} />
            </Field>
            <Field label="Register the best as model" hint="Optional model name">
              <input value={values.register ?? ''} onInput={set('register')} />
            </Field>
          </>
        )}
      </Form>
    </Card>
  );
}

export function JobPage(props: { id: string }) {
  const { data: j, error } = useStream<JobDetail>(`/api/jobs/${encodeURIComponent(props.id)}/stream`);
  return (
    <Page
      title={`Job ${props.id}`}
      subtitle={<Link to="/jobs">← All jobs</Link>}
      actions={
        j && (
          <>
            {j.report && (
              <a class="button" href={`/api/jobs/${encodeURIComponent(j.id)}/report`} target="_blank" rel="noopener">
                Open report
              </a>
            )}
            {j.status === 'running' && j.managed && (
              <ConfirmButton label="Cancel job" title={`Cancel ${j.id}?`} confirmLabel="Cancel the job" danger onConfirm={() => api('POST', `/api/jobs/${encodeURIComponent(j.id)}/cancel`)}>
                <p>The job stops after its current batch. Finished work (cached features{j.kind === 'tune' ? ', completed trials' : ''}) is kept{j.kind === 'tune' ? `; continue it with kennel tune resume ${j.id}` : ''}.</p>
              </ConfirmButton>
            )}
            <DeleteButton what={`job ${j.id}`} path={`/api/jobs/${encodeURIComponent(j.id)}`} onDeleted={() => (location.hash = '#/jobs')}>
              <p>
                Deletes the job{j.kind === 'tune' ? ' with its trials' : ''} as <code>kennel jobs delete {j.id}</code> does. Models it registered stay.
              </p>
            </DeleteButton>
          </>
        )
      }
    >
      <Loaded state={{ data: j, error }}>{(j) => <JobView j={j} />}</Loaded>
    </Page>
  );
}

function JobView({ j }: { j: JobDetail }) {
  const m = j.result?.metrics;
  return (
    <>
      <Card title="Status">
        <Facts
          items={[
            ['Status', <Status value={j.status} />],
            ['Kind', j.kind],
            ['Dataset', j.dataset],
            ['Backbone', j.backbone],
            ['Started', when(j.createdAt)],
            ['Time', duration(j)],
            ['Model', j.model ? <Link to={`/models/${j.model.replace('@', '/')}`}>{j.model}</Link> : '—'],
          ]}
        />
        {j.status === 'running' && !j.managed && <p class="muted">This job runs in another process (the CLI or another daemon): its phases show there; stop it with Ctrl-C where it runs.</p>}
        {j.progress && j.progress.length > 0 && (
          <div class="phases" aria-live="polite">
            {j.progress.map((p) => (
              <Progress key={p.phase} label={p.phase} done={p.done} total={p.total} detail={p.detail} />
            ))}
          </div>
        )}
        {j.error && <ErrorBox error={new Error(j.status === 'cancelled' ? 'The job was cancelled.' : `The job failed: ${j.error}`)} />}
      </Card>
      {m && (
        <Card title="Metrics">
          <Table
            caption="Metrics"
            rowKey={(r) => r.split}
            rows={[
              { split: 'valid', ...m.valid },
              { split: 'test', ...m.test },
            ]}
            columns={[
              { key: 'split', label: 'Split', render: (r) => r.split },
              { key: 'top1', label: 'Top-1', numeric: true, render: (r) => pct(r.top1) },
              { key: 'top5', label: 'Top-5', numeric: true, render: (r) => pct(r.top5) },
              { key: 'ece', label: 'ECE (calibrated)', numeric: true, render: (r) => num(r.ece, 4) },
            ]}
          />
        </Card>
      )}
      {j.result?.history && j.result.history.length > 0 && (
        <Card title="Training curves">
          <div class="grid2">
            <LineChart
              title="Loss per epoch"
              x="index"
              series={[
                { name: 'train', points: j.result.history.map((e) => ({ x: e.epoch, y: e.trainLoss })) },
                { name: 'valid', points: j.result.history.map((e) => ({ x: e.epoch, y: e.validLoss })) },
              ]}
            />
            <LineChart
              title="Top-1 accuracy per epoch"
              x="index"
              yMax={1}
              yFormat={(v) => pct(v, 0)}
              series={[
                { name: 'train', points: j.result.history.map((e) => ({ x: e.epoch, y: e.trainTop1 })) },
                { name: 'valid', points: j.result.history.map((e) => ({ x: e.epoch, y: e.validTop1 })) },
              ]}
            />
          </div>
        </Card>
      )}
      {j.tuning && <TuningView t={j.tuning} />}
      {j.result?.rules && (
        <Card title="Insight rules">
          {j.result.rules.filter((r) => r.status === 'fired').length === 0 ? (
            <Empty title={`All ${j.result.rules.length} rules passed or had nothing to check.`} />
          ) : (
            <ul class="findings">
              {j.result.rules
                .filter((r) => r.status === 'fired')
                .map((r) => (
                  <li key={r.rule}>
                    <Badge tone={r.severity === 'warning' ? 'warn' : 'info'}>{r.rule}</Badge> {r.finding}
                    {r.recommendation && <p class="hint">{r.recommendation}</p>}
                  </li>
                ))}
            </ul>
          )}
        </Card>
      )}
    </>
  );
}

function TuningView({ t }: { t: Tuning }) {
  const names = [...new Set(t.trials.flatMap((x) => Object.keys(x.params)))];
  const better = (a: number, b: number) => (t.objective.direction === 'maximize' ? a > b : a < b);
  let best: number | null = null;
  const bestSoFar = t.trials.map((x) => {
    if (x.objective !== null && (x.status === 'completed' || x.status === 'stopped') && (best === null || better(x.objective, best))) best = x.objective;
    return { x: x.id, y: best };
  });
  const columns: Column<Trial>[] = [
    { key: 'id', label: 'Trial', numeric: true, sort: (x) => x.id, render: (x) => (t.best?.id === x.id ? <strong>#{x.id} ★</strong> : `#${x.id}`) },
    { key: 'status', label: 'Status', sort: (x) => x.status, render: (x) => <Status value={x.status} /> },
    { key: 'objective', label: t.objective.name, numeric: true, sort: (x) => x.objective, render: (x) => objective(t.objective.name, x.objective) },
    ...names.map((n): Column<Trial> => ({ key: `p:${n}`, label: n, numeric: true, sort: (x) => x.params[n], render: (x) => (typeof x.params[n] === 'number' ? num(x.params[n] as number, 4) : String(x.params[n] ?? '—')) })),
    { key: 'epochs', label: 'Epochs', numeric: true, sort: (x) => x.epochs, render: (x) => x.epochs ?? '—' },
    { key: 'seconds', label: 'Time', numeric: true, sort: (x) => x.seconds, render: (x) => seconds(x.seconds) },
  ];
  return (
    <>
      <Card title={`Tuning: ${t.strategy}, ${t.objective.direction} ${t.objective.name}`}>
        <Facts
          items={[
            ['Trials', `${t.trials.length} of ${t.maxTrials} (${Object.entries(t.counts).filter(([, n]) => n > 0).map(([s, n]) => `${n} ${s}`).join(', ') || 'none yet'})`],
            ['Early stopping', t.earlyStopping],
            ['Best', t.best ? `trial #${t.best.id}: ${objective(t.objective.name, t.best.objective)} with ${Object.entries(t.best.params).map(([k, v]) => `${k}=${typeof v === 'number' ? num(v, 4) : v}`).join(', ')}` : '—'],
            ['Registered model', t.model ? <Link to={`/models/${t.model.replace('@', '/')}`}>{t.model}</Link> : '—'],
          ]}
        />
        <LineChart
          title={`${t.objective.name} per trial`}
          yFormat={(v) => objective(t.objective.name, v)}
          x="index"
          series={[
            { name: 'trial', points: t.trials.map((x) => ({ x: x.id, y: x.objective })), dots: true, line: false },
            { name: 'best so far', points: bestSoFar },
          ]}
          empty="No trial has finished yet."
        />
        <ParallelCoordinates
          title="Trials across hyperparameters (parallel coordinates)"
          labels={t.trials.map((x) => `trial #${x.id}`)}
          better={t.objective.direction}
          axes={[
            ...names.map((n) => ({ name: n, values: t.trials.map((x) => x.params[n] ?? null) })),
            { name: t.objective.name, values: t.trials.map((x) => (x.status === 'completed' || x.status === 'stopped' ? x.objective : null)), format: (v: number) => objective(t.objective.name, v) },
          ]}
          empty="The chart appears once trials have hyperparameters."
        />
      </Card>
      <Card title="Trials">
        <Table caption="Trials" rowKey={(x) => String(x.id)} rows={t.trials} columns={columns} initialSort={{ key: 'id', dir: 'asc' }} empty={<Empty title="No trials yet." />} />
      </Card>
      {t.importance.length > 0 && (
        <Card title="Parameter importance">
          <Bars title="Share of the objective's variance explained" rows={t.importance.map((p) => ({ key: p.param, label: p.param, parts: [{ value: p.importance, series: 0, name: p.param }] }))} max={1} format={(v) => pct(v, 0)} />
        </Card>
      )}
    </>
  );
}
