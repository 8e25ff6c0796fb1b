import type { ComponentChildren, RefObject } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { num, sig } from './format';

/** Small SVG and HTML charts: no chart library, so the bundle stays small and nothing loads from elsewhere. */

export interface Series {
  name: string;
  points: Array<{ x: number; y: number | null }>;
  /** draw dots (e.g. one per trial) instead of only a line */
  dots?: boolean;
  line?: boolean;
}

const H = 200;
const M = { top: 12, right: 14, bottom: 28, left: 52 };

/** The element's width in CSS pixels, so SVG text keeps its size whatever the column width. */
function useWidth<T extends Element>(initial: number): [RefObject<T>, number] {
  const ref = useRef<T>(null);
  const [width, setWidth] = useState(initial);
  useEffect(() => {
    if (!ref.current) return;
    const observer = new ResizeObserver(([entry]) => entry && setWidth(Math.max(240, Math.round(entry.contentRect.width))));
    observer.observe(ref.current);
    return () => observer.disconnect();
  }, []);
  return [ref, width];
}

function ticks(min: number, max: number, count: number): number[] {
  if (max <= min) return [min];
  const step0 = (max - min) / count;
  const mag = 10 ** Math.floor(Math.log10(step0));
  const step = [1, 2, 2.5, 5, 10].map((f) => f * mag).find((s) => s >= step0) ?? step0;
  const out: number[] = [];
  for (let v = Math.ceil(min / step) * step; v <= max + step * 1e-9; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}

const clock = (t: number) => new Date(t).toLocaleTimeString('en-GB', { hour: '2-digit', minute: '2-digit', second: '2-digit' });

/** A line (or dot) chart; `x: 'time'` reads x as ms since epoch. */
export function LineChart(props: { title: string; series: Series[]; x?: 'time' | 'index'; yFormat?: (v: number) => string; yMin?: number; yMax?: number; empty?: string }) {
  const [ref, W] = useWidth<HTMLElement>(600);
  const all = props.series.flatMap((s) => s.points.filter((p) => p.y !== null)) as Array<{ x: number; y: number }>;
  const yFormat = props.yFormat ?? ((v: number) => num(v));
  const xFormat = props.x === 'time' ? clock : (v: number) => String(v);
  if (all.length === 0) {
    return (
      <figure class="chart" ref={ref}>
        <figcaption>{props.title}</figcaption>
        <div class="chart-empty">{props.empty ?? 'No data yet.'}</div>
      </figure>
    );
  }
  const xs = all.map((p) => p.x);
  const ys = all.map((p) => p.y);
  const [x0, x1] = [Math.min(...xs), Math.max(...xs)];
  const y0 = props.yMin ?? Math.min(0, ...ys);
  // all zero (an idle endpoint): a unit axis, not ticks that all read 0
  const y1 = props.yMax ?? (Math.max(...ys) > y0 ? Math.max(...ys) * 1.08 : y0 + 1);
  const sx = (x: number) => M.left + ((x - x0) / (x1 - x0 || 1)) * (W - M.left - M.right);
  const sy = (y: number) => H - M.bottom - ((y - y0) / (y1 - y0 || 1)) * (H - M.top - M.bottom);
  const yt = ticks(y0, y1, 4);
  const xt = x1 === x0 ? [x0] : props.x === 'time' ? [x0, (x0 + x1) / 2, x1] : ticks(x0, x1, 6).filter((v) => Number.isInteger(v));
  const paths = props.series.map((s) => {
    let d = '';
    let pen = false;
    for (const p of s.points) {
      if (p.y === null) {
        pen = false;
        continue;
      }
      d += `${pen ? 'L' : 'M'}${sx(p.x).toFixed(1)},${sy(p.y).toFixed(1)}`;
      pen = true;
    }
    return d;
  });
  const last = props.series.map((s) => [...s.points].reverse().find((p) => p.y !== null)?.y ?? null);
  return (
    <figure class="chart" ref={ref}>
      <figcaption>
        {props.title}
        <span class="legend">
          {props.series.map((s, i) => (
            <span key={s.name} class={`key s${i}`}>
              {s.name}
              {last[i] !== null && props.x === 'time' ? `: ${yFormat(last[i]!)}` : ''}
            </span>
          ))}
        </span>
      </figcaption>
      <svg viewBox={`0 0 ${W} ${H}`} role="img" aria-label={`${props.title}: ${props.series.map((s, i) => `${s.name} latest ${last[i] === null ? 'none' : yFormat(last[i]!)}`).join(', ')}`}>
        {yt.map((v) => (
          <g key={`y${v}`} class="grid">
            <line x1={M.left} x2={W - M.right} y1={sy(v)} y2={sy(v)} />
            <text x={M.left - 6} y={sy(v) + 4} text-anchor="end">
              {yFormat(v)}
            </text>
          </g>
        ))}
        {xt.map((v, i) => (
          <text key={`x${i}`} class="axis" x={sx(v)} y={H - 8} text-anchor={i === 0 && props.x === 'time' ? 'start' : i === xt.length - 1 && props.x === 'time' ? 'end' : 'middle'}>
            {xFormat(v)}
          </text>
        ))}
        {props.series.map((s, i) => (
          <g key={s.name} class={`series s${i}`}>
            {s.line !== false && <path d={paths[i]} />}
            {s.dots &&
              s.points.map((p) =>
                p.y === null ? null : (
                  <circle key={p.x} cx={sx(p.x)} cy={sy(p.y)} r={3.5}>
                    <title>{`${s.name} ${xFormat(p.x)}: ${yFormat(p.y)}`}</title>
                  </circle>
                ),
              )}
          </g>
        ))}
      </svg>
    </figure>
  );
}

export interface BarRow {
  label: ComponentChildren;
  key: string;
  /** stacked parts, each with a series index (colour) */
  parts: Array<{ value: number; series: number; name: string }>;
  note?: ComponentChildren;
  flag?: boolean;
}

/** Horizontal stacked bars in HTML (readable labels, wraps on a phone). */
export function Bars(props: { title: string; rows: BarRow[]; legend?: string[]; max?: number; format?: (v: number) => string }) {
  const max = props.max ?? Math.max(1e-12, ...props.rows.map((r) => r.parts.reduce((s, p) => s + p.value, 0)));
  const format = props.format ?? ((v: number) => num(v));
  return (
    <figure class="bars">
      <figcaption>
        {props.title}
        {props.legend && (
          <span class="legend">
            {props.legend.map((l, i) => (
              <span key={l} class={`key s${i}`}>
                {l}
              </span>
            ))}
          </span>
        )}
      </figcaption>
      <ul>
        {props.rows.map((r) => {
          const total = r.parts.reduce((s, p) => s + p.value, 0);
          return (
            <li key={r.key} class={r.flag ? 'flag' : undefined}>
              <span class="bar-label">{r.label}</span>
              <span class="bar-track" aria-hidden="true">
                {r.parts.map((p) => (
                  <span key={p.name} class={`bar s${p.series}`} style={{ width: `${(100 * p.value) / max}%` }} title={`${p.name}: ${format(p.value)}`} />
                ))}
              </span>
              <span class="bar-value">
                {r.note ?? format(total)}
                <span class="sr-only">{r.parts.length > 1 ? ` (${r.parts.map((p) => `${p.name} ${format(p.value)}`).join(', ')})` : ''}</span>
              </span>
            </li>
          );
        })}
      </ul>
    </figure>
  );
}

/** A confusion matrix: rows are true classes, columns predictions, shaded by each row's share. */
export function ConfusionMatrix(props: { labels: string[]; matrix: number[][]; title: string }) {
  const n = props.labels.length;
  const cell = Math.max(3, Math.min(22, Math.floor(560 / Math.max(n, 1))));
  const showLabels = n <= 40;
  const pad = showLabels ? 150 : 4;
  // rotated column labels reach right of the last column
  const width = pad + n * cell + (showLabels ? 90 : 4);
  const height = pad + n * cell + 4;
  const errors = props.matrix.reduce((s, row, i) => s + row.reduce((t, v, j) => t + (i === j ? 0 : v), 0), 0);
  const total = props.matrix.reduce((s, row) => s + row.reduce((t, v) => t + v, 0), 0);
  return (
    <figure class="confusion">
      <figcaption>
        {props.title}: {num(total, 0)} images, {num(errors, 0)} misclassified
      </figcaption>
      <div class="confusion-scroll">
        <svg viewBox={`0 0 ${width} ${height}`} style={{ maxWidth: `${width}px` }} role="img" aria-label={`${props.title}: ${errors} of ${total} images misclassified`}>
          {props.matrix.map((row, i) => {
            const rowTotal = row.reduce((s, v) => s + v, 0) || 1;
            return (
              <g key={i}>
                {showLabels && (
                  <text x={pad - 6} y={pad + i * cell + cell * 0.7} text-anchor="end" class="cm-label">
                    {props.labels[i]}
                  </text>
                )}
                {row.map((v, j) => (
                  <rect key={j} x={pad + j * cell} y={pad + i * cell} width={cell - 1} height={cell - 1} class={v === 0 ? 'cm-zero' : i === j ? 'cm-hit' : 'cm-miss'} style={v === 0 ? undefined : { opacity: 0.25 + 0.75 * (v / rowTotal) }}>
                    <title>{`true ${props.labels[i]}, predicted ${props.labels[j]}: ${v}`}</title>
                  </rect>
                ))}
              </g>
            );
          })}
          {showLabels &&
            props.labels.map((l, j) => (
              <text key={l} transform={`translate(${pad + j * cell + cell * 0.7},${pad - 6}) rotate(-60)`} class="cm-label">
                {l}
              </text>
            ))}
        </svg>
      </div>
      <p class="hint">Rows: true breed; columns: prediction. Green: correct, red: confusions, darker: a larger share of the row.</p>
    </figure>
  );
}

export interface ParallelAxis {
  name: string;
  /** one value per line; strings are categories, null a missing value */
  values: Array<number | string | null>;
  format?: (v: number) => string;
}

/**
 * Parallel coordinates: one vertical axis per hyperparameter and the objective, one line per trial,
 * coloured from the worst objective (light) to the best (dark). Numbers spanning 100x or more get a
 * log axis; strings are evenly spaced categories. `better` says which end of the last axis is best.
 */
export function ParallelCoordinates(props: { title: string; axes: ParallelAxis[]; labels: string[]; better: 'maximize' | 'minimize'; empty?: string }) {
  const [ref, W] = useWidth<HTMLElement>(700);
  const n = props.labels.length;
  if (n === 0 || props.axes.length < 2) {
    return (
      <figure class="chart" ref={ref}>
        <figcaption>{props.title}</figcaption>
        <div class="chart-empty">{props.empty ?? 'No data yet.'}</div>
      </figure>
    );
  }
  const PH = 260;
  const top = 28;
  const bottom = PH - 24;
  const left = 60;
  const right = W - 60;
  const ax = (i: number) => left + (i * (right - left)) / Math.max(1, props.axes.length - 1);
  const scales = props.axes.map((a) => {
    const cats = [...new Set(a.values.filter((v): v is string => typeof v === 'string'))].sort();
    if (cats.length) return { pos: (v: number | string) => (cats.length === 1 ? 0.5 : cats.indexOf(String(v)) / (cats.length - 1)), ticks: cats.map((c) => ({ at: cats.length === 1 ? 0.5 : cats.indexOf(c) / (cats.length - 1), label: c })) };
    const nums = a.values.filter((v): v is number => typeof v === 'number');
    const [lo, hi] = [Math.min(...nums), Math.max(...nums)];
    const log = lo > 0 && hi / lo >= 100;
    const f = (v: number) => (log ? Math.log10(v) : v);
    const pos = (v: number | string) => (hi === lo ? 0.5 : (f(Number(v)) - f(lo)) / (f(hi) - f(lo)));
    const fmt = a.format ?? sig;
    return { pos, ticks: hi === lo ? [{ at: 0.5, label: fmt(lo) }] : [{ at: 0, label: fmt(lo) }, { at: 1, label: fmt(hi) }] };
  });
  const y = (p: number) => bottom - p * (bottom - top);
  const objective = props.axes[props.axes.length - 1]!.values;
  const objs = objective.filter((v): v is number => typeof v === 'number');
  const [o0, o1] = [Math.min(...objs), Math.max(...objs)];
  // 0 = worst, 1 = best
  const quality = (v: number | string | null) => (typeof v !== 'number' ? null : o1 === o0 ? 1 : props.better === 'maximize' ? (v - o0) / (o1 - o0) : (o1 - v) / (o1 - o0));
  const order = props.labels.map((_, i) => i).sort((a, b) => (quality(objective[a] ?? null) ?? -1) - (quality(objective[b] ?? null) ?? -1));
  return (
    <figure class="chart parallel" ref={ref}>
      <figcaption>
        {props.title}
        <span class="legend">
          <span class="key pc-worst">worst</span>
          <span class="key pc-best">best</span>
        </span>
      </figcaption>
      <svg viewBox={`0 0 ${W} ${PH}`} role="img" data-chart="parallel-coordinates" aria-label={`${props.title}: ${n} trials across ${props.axes.map((a) => a.name).join(', ')}`}>
        {order.map((i) => {
          const q = quality(objective[i] ?? null);
          const pts = props.axes.map((a, k) => {
            const v = a.values[i];
            return v === null || v === undefined ? null : `${ax(k).toFixed(1)},${y(scales[k]!.pos(v)).toFixed(1)}`;
          });
          if (pts.some((p) => p === null)) return null;
          return (
            <polyline key={props.labels[i]} class={q === null ? 'pc-line failed' : 'pc-line'} points={pts.join(' ')} style={q === null ? undefined : { stroke: `hsl(218 72% ${78 - 46 * q}%)` }}>
              <title>{`${props.labels[i]}: ${props.axes.map((a) => `${a.name} ${a.values[i] === null ? '—' : typeof a.values[i] === 'number' ? (a.format ?? sig)(a.values[i] as number) : a.values[i]}`).join(', ')}`}</title>
            </polyline>
          );
        })}
        {props.axes.map((a, k) => (
          <g key={a.name} class="pc-axis">
            <line x1={ax(k)} x2={ax(k)} y1={top} y2={bottom} />
            <text x={ax(k)} y={14} text-anchor="middle" class="pc-name">
              {a.name}
            </text>
            {scales[k]!.ticks.map((t) => (
              <text key={t.label} x={ax(k) + 5} y={y(t.at) + 4} class="axis">
                {t.label}
              </text>
            ))}
          </g>
        ))}
      </svg>
    </figure>
  );
}
