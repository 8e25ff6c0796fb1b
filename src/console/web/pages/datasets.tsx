import { useMemo, useState } from 'preact/hooks';
import { useApi } from '../api';
import { Bars } from '../charts';
import { DeleteButton } from '../delete';
import { num, plural, when } from '../format';
import { Badge, Card, Empty, Facts, Link, Loaded, Page, Table } from '../ui';

type Split = 'train' | 'valid' | 'test';
const SPLITS: Split[] = ['train', 'valid', 'test'];

interface DatasetSummary {
  name: string;
  versions: number;
  latest: number;
  classes: number;
  images: Record<Split, number>;
}

interface VersionRow {
  version: number;
  createdAt: string;
  source: string;
  classes: number;
  images: Record<Split, number>;
  skipped: number;
  duplicates: number;
  imbalanceRatio: number | null;
}

interface VersionDetail {
  dataset: string;
  version: number;
  createdAt: string;
  source: string;
  manifestSha: string;
  classes: string[];
  report: {
    layout: string;
    images: Record<Split, number>;
    classCounts: Record<Split, number[]>;
    skipped: Array<{ path: string; reason: string }>;
    duplicates: Array<{ sha256: string; paths: string[]; splits: Split[] }>;
    imbalance: { min: number; max: number; ratio: number | null };
  };
  imbalance: { warning: string | null; small: string[] };
  samples: Array<Array<{ sha: string; split: Split; path: string }>>;
}

const total = (images: Record<Split, number>) => images.train + images.valid + images.test;

export function DatasetsPage() {
  const state = useApi<{ datasets: DatasetSummary[] }>('/api/datasets');
  return (
    <Page title="Datasets" subtitle="Versioned image datasets: each import of changed files is a new, immutable version.">
      <Loaded state={state}>
        {({ datasets }) => (
          <Card>
            <Table
              caption="Datasets"
              rowKey={(d) => d.name}
              rows={datasets}
              initialSort={{ key: 'name', dir: 'asc' }}
              empty={
                <Empty title="No datasets yet.">
                  <p>Import a folder of photos (class folders, or train/valid/test folders of class folders):</p>
                  <pre>
                    <code>kennel data import ../shared/data/breeds-mini --name breeds</code>
                  </pre>
                </Empty>
              }
              columns={[
                { key: 'name', label: 'Name', sort: (d) => d.name, render: (d) => <Link to={`/datasets/${d.name}`}>{d.name}</Link> },
                { key: 'latest', label: 'Latest version', numeric: true, sort: (d) => d.latest, render: (d) => `v${d.latest} (${plural(d.versions, 'version')})` },
                { key: 'classes', label: 'Classes', numeric: true, sort: (d) => d.classes, render: (d) => num(d.classes, 0) },
                { key: 'images', label: 'Images (train / valid / test)', numeric: true, sort: (d) => total(d.images), render: (d) => `${num(total(d.images), 0)} (${d.images.train} / ${d.images.valid} / ${d.images.test})` },
              ]}
            />
          </Card>
        )}
      </Loaded>
    </Page>
  );
}

export function DatasetPage(props: { name: string; version?: number }) {
  const overview = useApi<DatasetSummary & { versions: VersionRow[] }>(`/api/datasets/${encodeURIComponent(props.name)}`);
  const version = props.version ?? overview.data?.latest;
  const detail = useApi<VersionDetail>(version ? `/api/datasets/${encodeURIComponent(props.name)}/versions/${version}` : null);
  return (
    <Page
      title={`Dataset ${props.name}${version ? ` v${version}` : ''}`}
      subtitle={<Link to="/datasets">← All datasets</Link>}
      actions={
        overview.data && (
          <>
            <label class="inline">
              Version{' '}
              <select value={String(version)} onChange={(e) => (location.hash = `#/datasets/${encodeURIComponent(props.name)}/${e.currentTarget.value}`)}>
                {overview.data.versions.map((v) => (
                  <option key={v.version} value={String(v.version)}>
                    v{v.version} · {when(v.createdAt)}
                  </option>
                ))}
              </select>
            </label>
            {version && (
              <DeleteButton what={`${props.name}@${version}`} path={`/api/datasets/${encodeURIComponent(props.name)}/versions/${version}`} onDeleted={() => (location.hash = '#/datasets')}>
                <p>
                  Deletes the version <strong>{props.name}@{version}</strong> as <code>kennel data delete {props.name}@{version}</code> does; models trained on it keep working. It is refused while a job uses it.
                </p>
              </DeleteButton>
            )}
          </>
        )
      }
    >
      <Loaded state={overview}>
        {(o) => (
          <>
            <Loaded state={detail}>{(v) => <VersionView v={v} />}</Loaded>
            <Card title="Versions">
              <Table
                caption="Versions"
                rowKey={(v) => String(v.version)}
                rows={o.versions}
                columns={[
                  { key: 'v', label: 'Version', render: (v) => <Link to={`/datasets/${o.name}/${v.version}`}>v{v.version}</Link> },
                  { key: 'at', label: 'Imported', render: (v) => when(v.createdAt) },
                  { key: 'images', label: 'Images', numeric: true, render: (v) => num(total(v.images), 0) },
                  { key: 'classes', label: 'Classes', numeric: true, render: (v) => v.classes },
                  { key: 'skipped', label: 'Skipped', numeric: true, render: (v) => (v.skipped ? <Badge tone="warn">{v.skipped}</Badge> : 0) },
                  { key: 'source', label: 'Source', render: (v) => <code class="path">{v.source}</code> },
                ]}
              />
            </Card>
          </>
        )}
      </Loaded>
    </Page>
  );
}

function VersionView({ v }: { v: VersionDetail }) {
  const [filter, setFilter] = useState('');
  const counts = v.report.classCounts;
  const small = new Set(v.imbalance.small);
  const rows = useMemo(
    () =>
      v.classes.map((c, i) => ({
        key: c,
        label: c,
        flag: small.has(c),
        parts: SPLITS.map((s, k) => ({ value: counts[s][i] ?? 0, series: k, name: s })),
      })),
    [v],
  );
  const shown = v.classes.map((c, i) => ({ c, i })).filter(({ c }) => c.toLowerCase().includes(filter.trim().toLowerCase()));
  const leaks = v.report.duplicates.filter((d) => d.splits.length > 1);
  return (
    <>
      <Card title="Summary">
        <Facts
          items={[
            ['Images', `${num(total(v.report.images), 0)} (train ${v.report.images.train}, valid ${v.report.images.valid}, test ${v.report.images.test})`],
            ['Classes', v.classes.length],
            ['Layout', v.report.layout === 'splits' ? 'train/valid/test folders, kept as given' : 'class folders, split by Kennel'],
            ['Imported', when(v.createdAt)],
            ['Source', <code class="path">{v.source}</code>],
            ['Training images per class', `${v.report.imbalance.min}–${v.report.imbalance.max}${v.report.imbalance.ratio ? ` (max/min ${v.report.imbalance.ratio})` : ''}`],
          ]}
        />
        {v.imbalance.warning && (
          <div class="warning" role="alert">
            <strong>Imbalance:</strong> {v.imbalance.warning} Flagged: {v.imbalance.small.slice(0, 12).join(', ')}
            {v.imbalance.small.length > 12 ? ` and ${v.imbalance.small.length - 12} more` : ''}.
          </div>
        )}
        {leaks.length > 0 && (
          <div class="warning" role="alert">
            <strong>Leakage:</strong> {plural(leaks.length, 'image')} appear in more than one split (trained on and evaluated on), e.g. <code class="path">{leaks[0]!.paths.join(', ')}</code>.
          </div>
        )}
      </Card>
      <Card title="Class counts">
        <Bars title={`Images per class and split (${v.classes.length} classes)`} legend={SPLITS} rows={rows} format={(x) => num(x, 0)} />
      </Card>
      <Card title="Skipped files">
        {v.report.skipped.length === 0 ? (
          <Empty title="No files were skipped: every image was readable and within the limits." />
        ) : (
          <Table
            caption="Skipped files"
            rowKey={(s) => s.path}
            rows={v.report.skipped}
            initialSort={{ key: 'path', dir: 'asc' }}
            columns={[
              { key: 'path', label: 'File', sort: (s) => s.path, render: (s) => <code class="path">{s.path}</code> },
              { key: 'reason', label: 'Reason', sort: (s) => s.reason, render: (s) => s.reason },
            ]}
          />
        )}
      </Card>
      <Card
        title="Samples per class"
        actions={
          <label class="inline">
            Filter{' '}
            <input type="search" placeholder="breed" value={filter} onInput={(e) => setFilter(e.currentTarget.value)} />
          </label>
        }
      >
        {shown.length === 0 ? (
          <Empty title={`No class matches "${filter}".`} />
        ) : (
          <div class="samples">
            {shown.map(({ c, i }) => (
              <section key={c} class="sample-class" aria-label={c}>
                <h3>
                  {c} <span class="muted">({counts.train[i] ?? 0} train)</span>
                  {small.has(c) && <Badge tone="warn">few images</Badge>}
                </h3>
                <div class="thumbs">
                  {(v.samples[i] ?? []).map((s) => (
                    <img key={s.sha} loading="lazy" width={96} height={96} src={`/api/datasets/${encodeURIComponent(v.dataset)}/versions/${v.version}/images/${s.sha}`} alt={`${c} (${s.split}): ${s.path}`} title={s.path} />
                  ))}
                </div>
              </section>
            ))}
          </div>
        )}
      </Card>
    </>
  );
}
