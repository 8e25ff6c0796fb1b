import { useState } from 'preact/hooks';
import { api, useApi } from '../api';
import { Bars, ConfusionMatrix } from '../charts';
import { DeleteButton } from '../delete';
import { num, pct, when } from '../format';
import { Badge, Card, ConfirmButton, Empty, Facts, Link, Loaded, Page, Select, Table } from '../ui';

interface SplitMetrics {
  top1?: number;
  top5?: number;
  ece?: number;
  eceUncalibrated?: number;
  n?: number;
  perClass?: number[];
  confusion?: number[][];
}

interface VersionRow {
  version: number;
  tags: string[];
  createdAt: string;
  source: string;
  classes: number;
  metrics: { valid?: SplitMetrics; test?: SplitMetrics };
  job?: string;
  dataset?: string;
}

interface ModelVersion {
  name: string;
  version: number;
  onnxSha: string;
  tags: string[];
  createdAt: string;
  card: {
    labels: string[];
    temperature: number;
    source: string;
    inputName: string;
    preprocess: { size: number };
    metrics?: { train?: { top1?: number }; valid?: SplitMetrics; test?: SplitMetrics };
    lineage?: {
      job?: string;
      dataset?: { name: string; version: number };
      backbone?: { id: string; featureTensor?: string };
      hyperparameters?: Record<string, unknown>;
      codeVersion?: string;
      tuningJob?: string;
      trial?: number;
    };
  };
  servedBy: Array<{ endpoint: string; variant: string; traffic: number }>;
}

function Tags({ tags }: { tags: string[] }) {
  return (
    <span class="tags">
      {tags.map((t) => (
        <Badge key={t} tone={t === 'production' ? 'ok' : t === 'latest' ? 'info' : 'muted'}>
          {t}
        </Badge>
      ))}
    </span>
  );
}

export function ModelsPage() {
  const state = useApi<{ models: Array<{ name: string; versions: VersionRow[] }> }>('/api/models');
  return (
    <Page title="Models" subtitle="Registered model versions with their tags, metrics and lineage.">
      <Loaded state={state}>
        {({ models }) =>
          models.length === 0 ? (
            <Card>
              <Empty title="No models yet.">
                <p>Train one on the Jobs page, or from the command line:</p>
                <pre>
                  <code>kennel train --dataset breeds --backbone mobilenetv2-12-int8</code>
                </pre>
              </Empty>
            </Card>
          ) : (
            models.map((m) => (
              <Card key={m.name} title={m.name}>
                <Table
                  caption={`Versions of ${m.name}`}
                  rowKey={(v) => String(v.version)}
                  rows={m.versions}
                  initialSort={{ key: 'version', dir: 'desc' }}
                  columns={[
                    { key: 'version', label: 'Version', numeric: true, sort: (v) => v.version, render: (v) => <Link to={`/models/${m.name}/${v.version}`}>{`${m.name}@${v.version}`}</Link> },
                    { key: 'tags', label: 'Tags', render: (v) => <Tags tags={v.tags} /> },
                    { key: 'valid', label: 'Valid top-1', numeric: true, sort: (v) => v.metrics.valid?.top1, render: (v) => pct(v.metrics.valid?.top1) },
                    { key: 'test', label: 'Test top-1', numeric: true, sort: (v) => v.metrics.test?.top1, render: (v) => pct(v.metrics.test?.top1) },
                    { key: 'dataset', label: 'Dataset', render: (v) => v.dataset ?? v.source },
                    { key: 'created', label: 'Created', sort: (v) => v.createdAt, render: (v) => when(v.createdAt) },
                  ]}
                />
              </Card>
            ))
          )
        }
      </Loaded>
    </Page>
  );
}

export function ModelPage(props: { name: string; version?: number }) {
  const list = useApi<{ models: Array<{ name: string; versions: VersionRow[] }> }>(props.version ? null : '/api/models');
  const version = props.version ?? list.data?.models.find((m) => m.name === props.name)?.versions[0]?.version;
  const state = useApi<ModelVersion>(version ? `/api/models/${encodeURIComponent(props.name)}/versions/${version}` : null);
  const ref = `${props.name}@${version ?? ''}`;
  return (
    <Page
      title={`Model ${ref}`}
      subtitle={<Link to="/models">← All models</Link>}
      actions={
        state.data && (
          <>
            {!state.data.tags.includes('production') && (
            <ConfirmButton
              label="Promote to production"
              title={`Promote ${ref} to production?`}
              confirmLabel="Promote"
              class="primary"
              onConfirm={async () => {
                await api('POST', `/api/models/${encodeURIComponent(props.name)}/tags`, { tag: 'production', version });
                state.reload();
              }}
            >
              <p>
                The tag <code>production</code> will point at <strong>{ref}</strong>. References such as <code>{props.name}:production</code> resolve to it from now on.
              </p>
              <p class="hint">Running endpoints keep the version they serve: start a rolling update on the endpoint's page to serve this one.</p>
            </ConfirmButton>
            )}
            <DeleteButton what={ref} path={`/api/models/${encodeURIComponent(props.name)}/versions/${version}`} forceable onDeleted={() => (location.hash = '#/models')}>
              <p>
                Deletes the version <strong>{ref}</strong> as <code>kennel models delete {ref}</code> does. A version an endpoint serves or tagged <code>production</code> is refused first; you may then delete it anyway.
              </p>
            </DeleteButton>
          </>
        )
      }
    >
      <Loaded state={state}>{(mv) => <ModelView mv={mv} />}</Loaded>
    </Page>
  );
}

function ModelView({ mv }: { mv: ModelVersion }) {
  const [split, setSplit] = useState<'valid' | 'test'>('test');
  const m = mv.card.metrics;
  const l = mv.card.lineage;
  const s = m?.[split];
  const perClass = s?.perClass;
  return (
    <>
      <Card title="Model card">
        <Facts
          items={[
            ['Tags', <Tags tags={mv.tags} />],
            ['Classes', mv.card.labels.length],
            ['Input', `${mv.card.inputName}, ${mv.card.preprocess.size}×${mv.card.preprocess.size} pixels`],
            ['Temperature', num(mv.card.temperature, 3)],
            ['Created', when(mv.createdAt)],
            ['ONNX sha256', <code class="path">{mv.onnxSha}</code>],
            ['Source', mv.card.source === 'kennel' ? 'trained by Kennel' : 'imported'],
          ]}
        />
      </Card>
      {m && (
        <Card title="Metrics">
          <Table
            caption="Metrics per split"
            rowKey={(r) => r.split}
            rows={(['valid', 'test'] as const).filter((k) => m[k]).map((k) => ({ split: k, ...m[k]! }))}
            columns={[
              { key: 'split', label: 'Split', render: (r) => r.split },
              { key: 'n', label: 'Images', numeric: true, render: (r) => r.n ?? '—' },
              { key: 'top1', label: 'Top-1', numeric: true, render: (r) => pct(r.top1) },
              { key: 'top5', label: 'Top-5', numeric: true, render: (r) => pct(r.top5) },
              { key: 'ece', label: 'ECE', numeric: true, render: (r) => `${num(r.ece, 4)} (uncalibrated ${num(r.eceUncalibrated, 4)})` },
            ]}
          />
        </Card>
      )}
      {s?.confusion && (
        <Card
          title="Confusion matrix"
          actions={
            <label class="inline">
              Split{' '}
              <Select value={split} options={['test', 'valid']} onChange={(v) => setSplit(v as 'valid' | 'test')} />
            </label>
          }
        >
          <ConfusionMatrix title={`${split} split`} labels={mv.card.labels} matrix={s.confusion} />
        </Card>
      )}
      {perClass && (
        <Card title="Per-class accuracy">
          <Bars
            title={`${split} accuracy per class, lowest first`}
            max={1}
            format={(v) => pct(v, 0)}
            rows={mv.card.labels
              .map((label, i) => ({ label, value: perClass[i] ?? 0 }))
              .sort((a, b) => a.value - b.value)
              .map((r) => ({ key: r.label, label: r.label, flag: r.value < 0.5, parts: [{ value: r.value, series: 0, name: 'accuracy' }] }))}
          />
        </Card>
      )}
      <Card title="Lineage">
        {l ? (
          <Facts
            items={[
              ['Training job', l.job ? <Link to={`/jobs/${l.job}`}>{l.job}</Link> : '—'],
              ['Dataset', l.dataset ? <Link to={`/datasets/${l.dataset.name}/${l.dataset.version}`}>{`${l.dataset.name}@${l.dataset.version}`}</Link> : '—'],
              ['Backbone', l.backbone?.id],
              ['Tuning job', l.tuningJob ? <Link to={`/jobs/${l.tuningJob}`}>{`${l.tuningJob} (trial ${l.trial})`}</Link> : '—'],
              ['Hyperparameters', l.hyperparameters ? <span class="kv">{Object.entries(l.hyperparameters).map(([k, v]) => <code key={k}>{`${k}=${String(v)}`}</code>)}</span> : '—'],
              ['Code version', l.codeVersion],
              ['Served by', mv.servedBy.length ? mv.servedBy.map((s) => <Link key={s.endpoint + s.variant} to={`/endpoints/${s.endpoint}`}>{`${s.endpoint} (${s.variant}, ${pct(s.traffic, 0)}) `}</Link>) : 'no endpoint'],
            ]}
          />
        ) : (
          <Empty title="This model was imported, so Kennel has no lineage for it." />
        )}
      </Card>
    </>
  );
}
