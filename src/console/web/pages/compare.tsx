import type { ComponentChildren } from 'preact';
import type { CompareRun } from '../../api-types';
import { useApi } from '../api';
import { LineChart, type Series } from '../charts';
import { num, pct, seconds, sig } from '../format';
import { Card, Link, Loaded, Page } from '../ui';
import { settingsText } from './jobs';

/** A run's short name: the model it registered, else its job id. */
const nameOf = (r: CompareRun) => r.model ?? r.job ?? r.ref;

/** Training runs side by side: curves overlaid (one colour per run), settings and metrics in columns. */
export function ComparePage(props: { refs: string[] }) {
  const state = useApi<{ runs: CompareRun[] }>(`/api/compare?runs=${encodeURIComponent(props.refs.join(','))}`);
  return (
    <Page title="Compare runs" subtitle={<Link to="/jobs">← All jobs</Link>}>
      <Loaded state={state}>{(d) => <CompareView runs={d.runs} />}</Loaded>
    </Page>
  );
}

function CompareView({ runs }: { runs: CompareRun[] }) {
  const curve = (y: (e: CompareRun['history'][number]) => number): Series[] => runs.map((r) => ({ name: nameOf(r), points: r.history.map((e) => ({ x: e.epoch, y: y(e) })) }));
  const rows: Array<[string, (r: CompareRun) => ComponentChildren]> = [
    ['Job', (r) => (r.job ? <Link to={`/jobs/${r.job}`}>{r.job}</Link> : '—')],
    ['Model', (r) => (r.model ? <Link to={`/models/${r.model.replace('@', '/')}`}>{r.model}</Link> : '—')],
    ['Dataset', (r) => r.dataset ?? '—'],
    ['Backbone', (r) => r.backbone ?? '—'],
    ['Head', (r) => r.settings.head ?? '—'],
    ['Learning rate', (r) => sig(r.settings.lr)],
    ['Batch size', (r) => r.settings.batchSize ?? '—'],
    ['Epochs (max)', (r) => r.settings.epochs ?? '—'],
    ['Augmented views', (r) => r.settings.augment ?? '—'],
    ['Weight decay', (r) => sig(r.settings.weightDecay)],
    ['Label smoothing', (r) => sig(r.settings.labelSmoothing)],
    ['Optimizer', (r) => r.settings.optimizer ?? '—'],
    ['Best epoch', (r) => (r.bestEpoch !== undefined ? `${r.bestEpoch} of ${r.history.length}` : '—')],
    ['Valid top-1', (r) => pct(r.metrics.validTop1 ?? null)],
    ['Valid loss', (r) => num(r.metrics.validLoss ?? null, 4)],
    ['Test top-1', (r) => pct(r.metrics.testTop1 ?? null)],
    ['Test top-5', (r) => pct(r.metrics.testTop5 ?? null)],
    ['Test ECE (calibrated)', (r) => num(r.metrics.ece ?? null, 4)],
    ['Time', (r) => seconds(r.metrics.seconds ?? null)],
  ];
  return (
    <>
      <Card title="Curves">
        <div class="grid2">
          <LineChart title="Valid loss per epoch" x="index" series={curve((e) => e.validLoss)} empty="These runs recorded no epochs." />
          <LineChart title="Valid top-1 per epoch" x="index" yMax={1} yFormat={(v) => pct(v, 0)} series={curve((e) => e.validTop1)} empty="These runs recorded no epochs." />
          <LineChart title="Train loss per epoch" x="index" series={curve((e) => e.trainLoss)} empty="These runs recorded no epochs." />
        </div>
      </Card>
      <Card title="Settings and metrics">
        <div class="table-wrap">
          <table class="compare">
            <caption class="sr-only">Settings and metrics of each run</caption>
            <thead>
              <tr>
                <th scope="col">Run</th>
                {runs.map((r, i) => (
                  <th key={r.ref} scope="col">
                    <span class={`key s${i}`}>{nameOf(r)}</span>
                    <div class="hint">{settingsText(r.settings)}</div>
                  </th>
                ))}
              </tr>
            </thead>
            <tbody>
              {rows.map(([label, cell]) => (
                <tr key={label}>
                  <th scope="row">{label}</th>
                  {runs.map((r) => (
                    <td key={r.ref}>{cell(r)}</td>
                  ))}
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      </Card>
    </>
  );
}
