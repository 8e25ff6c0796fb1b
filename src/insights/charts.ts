/**
 * Inline SVG charts for the report: plain strings, no scripts, no external assets. Every chart
 * is an <svg> with data-chart (its kind), a <title>, and data-* counts of what it drew, so a test
 * (or a reader with dev tools) can check it without parsing the drawing.
 */

export const esc = (s: string | number): string => String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

export const PALETTE = ['#2563eb', '#dc2626', '#16a34a', '#9333ea', '#ea580c', '#0891b2', '#ca8a04', '#db2777'];

const fmt = (x: number): string => {
  if (x === 0) return '0';
  const a = Math.abs(x);
  if (a >= 1e6 || a < 1e-3) return x.toExponential(1);
  if (a >= 100) return x.toFixed(0);
  if (a >= 10) return x.toFixed(1);
  return Number(x.toPrecision(2)).toString();
};

/** About `count` round tick values covering [lo, hi]. */
export function niceTicks(lo: number, hi: number, count = 5): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw)!;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}

/** Formats ticks with as many decimals as their spacing needs (0, 0.5, 1 rather than 0, 0.5, 1.0). */
export function tickFormat(ticks: number[]): (v: number) => string {
  const step = ticks.length > 1 ? Math.abs(ticks[1]! - ticks[0]!) : Math.abs(ticks[0] ?? 1) || 1;
  const big = Math.max(...ticks.map(Math.abs));
  if (big >= 1e6 || (big > 0 && big < 1e-3)) return (v) => (v === 0 ? '0' : v.toExponential(1));
  const decimals = Math.min(6, Math.max(0, Math.ceil(-Math.log10(step) - 1e-9)));
  return (v) => v.toFixed(decimals);
}

interface Frame {
  width: number;
  height: number;
  left: number;
  right: number;
  top: number;
  bottom: number;
}

/** Plot area inside the svg; charts with a legend leave its rows under the title. */
const frameOf = (width: number, height: number, left = 56, bottom = 36, legendRows = 0): Frame => ({ width, height: height + 16 * Math.max(0, legendRows - 1), left, right: 16, top: 28 + 16 * legendRows, bottom });

interface LegendItem {
  name: string;
  color: string;
}

const LEGEND_START = 56;
const itemWidth = (it: LegendItem) => 26 + it.name.length * 6;

/** Legend items laid out in rows that fit the chart's width. */
function legendRows(items: LegendItem[], width: number): Array<Array<LegendItem & { x: number }>> {
  const rows: Array<Array<LegendItem & { x: number }>> = [];
  let x = Infinity;
  for (const it of items) {
    if (x + itemWidth(it) > width - 16) {
      rows.push([]);
      x = LEGEND_START;
    }
    rows[rows.length - 1]!.push({ ...it, x });
    x += itemWidth(it);
  }
  return rows;
}

function scale(domain: [number, number], range: [number, number], log = false): (v: number) => number {
  const f = log ? (v: number) => Math.log10(Math.max(v, 1e-30)) : (v: number) => v;
  const [d0, d1] = [f(domain[0]), f(domain[1])];
  const span = d1 - d0 || 1;
  return (v) => range[0] + ((f(v) - d0) / span) * (range[1] - range[0]);
}

function open(kind: string, title: string, f: Frame, attrs: Record<string, string | number> = {}): string {
  const extra = Object.entries(attrs)
    .map(([k, v]) => ` data-${k}="${esc(v)}"`)
    .join('');
  return `<svg xmlns="http://www.w3.org/2000/svg" class="chart" data-chart="${esc(kind)}"${extra} viewBox="0 0 ${f.width} ${f.height}" width="${f.width}" height="${f.height}" role="img" aria-label="${esc(title)}"><title>${esc(title)}</title><text x="${f.left}" y="16" class="chart-title">${esc(title)}</text>`;
}

function axes(f: Frame, x: { ticks: number[]; at: (v: number) => number; label: string; fmt?: (v: number) => string }, y: { ticks: number[]; at: (v: number) => number; label: string; fmt?: (v: number) => string }): string {
  const x0 = f.left;
  const x1 = f.width - f.right;
  const y0 = f.height - f.bottom;
  const y1 = f.top;
  let s = `<g class="axes"><line x1="${x0}" y1="${y0}" x2="${x1}" y2="${y0}"/><line x1="${x0}" y1="${y0}" x2="${x0}" y2="${y1}"/>`;
  const xf = x.fmt ?? tickFormat(x.ticks);
  const yf = y.fmt ?? tickFormat(y.ticks);
  for (const t of x.ticks) s += `<line x1="${x.at(t)}" y1="${y0}" x2="${x.at(t)}" y2="${y0 + 4}"/><text x="${x.at(t)}" y="${y0 + 15}" text-anchor="middle">${esc(xf(t))}</text>`;
  for (const t of y.ticks) s += `<line x1="${x0 - 4}" y1="${y.at(t)}" x2="${x0}" y2="${y.at(t)}"/><line class="grid" x1="${x0}" y1="${y.at(t)}" x2="${x1}" y2="${y.at(t)}"/><text x="${x0 - 6}" y="${y.at(t) + 3}" text-anchor="end">${esc(yf(t))}</text>`;
  s += `<text x="${(x0 + x1) / 2}" y="${f.height - 4}" text-anchor="middle" class="axis-label">${esc(x.label)}</text>`;
  s += `<text x="12" y="${(y0 + y1) / 2}" text-anchor="middle" class="axis-label" transform="rotate(-90 12 ${(y0 + y1) / 2})">${esc(y.label)}</text></g>`;
  return s;
}

function legend(rows: ReturnType<typeof legendRows>): string {
  let s = '<g class="legend">';
  rows.forEach((row, r) => {
    for (const it of row) s += `<rect x="${it.x}" y="${23 + 16 * r}" width="10" height="10" fill="${it.color}"/><text x="${it.x + 14}" y="${32 + 16 * r}">${esc(it.name)}</text>`;
  });
  return s + '</g>';
}

export interface Series {
  name: string;
  points: Array<[number, number]>;
  color?: string;
  /** draw dots instead of a line */
  dots?: boolean;
}

export interface LineChartSpec {
  kind: string;
  title: string;
  series: Series[];
  xLabel: string;
  yLabel: string;
  logY?: boolean;
  /** y axis from zero (default for non-log charts) */
  zeroY?: boolean;
  yMax?: number;
  /** vertical markers, e.g. the best epoch */
  markers?: Array<{ x: number; label: string }>;
  yFmt?: (v: number) => string;
  width?: number;
  height?: number;
  attrs?: Record<string, string | number>;
}

export function lineChart(c: LineChartSpec): string {
  const width = c.width ?? 520;
  const keys = legendRows(
    c.series.map((ser, i) => ({ name: ser.name, color: ser.color ?? PALETTE[i % PALETTE.length]! })),
    width,
  );
  const f = frameOf(width, c.height ?? 250, 56, 36, keys.length);
  const all = c.series.flatMap((s) => s.points).filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y) && (!c.logY || y > 0));
  const xs = all.map((p) => p[0]);
  const ys = all.map((p) => p[1]);
  let xLo = Math.min(...xs);
  let xHi = Math.max(...xs);
  if (!(xHi > xLo)) [xLo, xHi] = [xLo - 1, xLo + 1];
  let yLo = c.logY ? Math.min(...ys) : c.zeroY === false ? Math.min(...ys) : Math.min(0, ...ys);
  let yHi = c.yMax ?? Math.max(...ys);
  if (c.logY) [yLo, yHi] = [10 ** Math.floor(Math.log10(yLo)), 10 ** Math.ceil(Math.log10(yHi))];
  if (!(yHi > yLo)) [yLo, yHi] = [yLo - 1, yLo + 1];
  const sx = scale([xLo, xHi], [f.left, f.width - f.right]);
  const sy = scale([yLo, yHi], [f.height - f.bottom, f.top], c.logY);
  const yTicks = c.logY ? Array.from({ length: Math.round(Math.log10(yHi / yLo)) + 1 }, (_, i) => yLo * 10 ** i) : niceTicks(yLo, yHi);
  let s = open(c.kind, c.title, f, { series: c.series.length, points: all.length, ...c.attrs });
  if (!all.length) return s + `<text x="${f.width / 2}" y="${f.height / 2}" text-anchor="middle" class="empty">no data</text></svg>`;
  s += axes(f, { ticks: niceTicks(xLo, xHi), at: sx, label: c.xLabel }, { ticks: yTicks, at: sy, label: c.yLabel, fmt: c.yFmt ?? (c.logY ? fmt : undefined) });
  for (const m of c.markers ?? []) s += `<g class="marker"><line x1="${sx(m.x)}" y1="${f.top}" x2="${sx(m.x)}" y2="${f.height - f.bottom}"/><text x="${sx(m.x) + 3}" y="${f.top + 10}">${esc(m.label)}</text></g>`;
  c.series.forEach((ser, i) => {
    const color = ser.color ?? PALETTE[i % PALETTE.length]!;
    const pts = ser.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y) && (!c.logY || y > 0));
    if (ser.dots) s += `<g data-series="${esc(ser.name)}" fill="${color}">${pts.map(([x, y]) => `<circle cx="${sx(x).toFixed(1)}" cy="${sy(y).toFixed(1)}" r="2.5"><title>${esc(ser.name)}: ${esc(fmt(y))} at ${esc(fmt(x))}</title></circle>`).join('')}</g>`;
    else s += `<path data-series="${esc(ser.name)}" fill="none" stroke="${color}" stroke-width="1.6" d="${pts.map(([x, y], k) => `${k ? 'L' : 'M'}${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join('')}"><title>${esc(ser.name)}</title></path>`;
  });
  return s + legend(keys) + '</svg>';
}

export interface TimelineSpec {
  /** data-chart value: 'timeline' (time axis with job phases) or 'step-phases' (step axis) */
  kind: string;
  title: string;
  xLabel: string;
  /** job phases as bands along the x axis (none for a step axis) */
  phases: Array<{ name: string; start: number; end: number }>;
  /** per-step bars: x position and width in x units, wall ms split by phase */
  bars: Array<{ t: number; width: number; parts: Array<{ phase: string; ms: number }>; label: string }>;
  phaseColors: Record<string, string>;
  width?: number;
  attrs?: Record<string, string | number>;
}

/** Per-step stacked bars (ms split by step phase), under a Gantt band of job phases when given. */
export function timelineChart(c: TimelineSpec): string {
  const width = c.width ?? 880;
  const order = Object.keys(c.phaseColors);
  const phaseNames = [...new Set(c.bars.flatMap((b) => b.parts.filter((p) => p.ms > 0).map((p) => p.phase)))].sort((a, b) => order.indexOf(a) - order.indexOf(b));
  const keys = legendRows(
    phaseNames.map((p) => ({ name: p, color: c.phaseColors[p] ?? '#888' })),
    width,
  );
  const f = frameOf(width, c.phases.length ? 310 : 250, 56, 36, keys.length);
  const start = Math.min(0, ...c.bars.map((b) => b.t));
  const end = Math.max(start + 1e-3, ...c.phases.map((p) => p.end), ...c.bars.map((b) => b.t + b.width));
  const sx = scale([start, end], [f.left, f.width - f.right]);
  const band = { top: f.top + 6, height: c.phases.length ? 22 : 0 };
  const plotTop = band.top + band.height + (c.phases.length ? 14 : 0);
  const maxMs = Math.max(1e-3, ...c.bars.map((b) => b.parts.reduce((a, p) => a + p.ms, 0)));
  const sy = scale([0, maxMs], [f.height - f.bottom, plotTop]);
  let s = open(c.kind, c.title, f, { phases: c.phases.length, bars: c.bars.length, 'step-phases': phaseNames.join(' '), ...c.attrs });
  s += axes(f, { ticks: niceTicks(start, end), at: sx, label: c.xLabel }, { ticks: niceTicks(0, maxMs, 4), at: sy, label: 'step ms' });
  c.phases.forEach((p, i) => {
    const x = sx(p.start);
    const w = Math.max(1, sx(p.end) - x);
    s += `<g class="job-phase" data-phase="${esc(p.name)}"><rect x="${x.toFixed(1)}" y="${band.top}" width="${w.toFixed(1)}" height="${band.height}" fill="${PALETTE[(i + 4) % PALETTE.length]}" opacity="0.35"><title>${esc(p.name)}: ${esc(fmt(p.end - p.start))} s</title></rect>${w > 40 ? `<text x="${(x + 4).toFixed(1)}" y="${band.top + 15}">${esc(p.name)}</text>` : ''}</g>`;
  });
  for (const b of c.bars) {
    const x = sx(b.t);
    const w = Math.max(0.8, sx(b.t + b.width) - x);
    let acc = 0;
    s += `<g class="step">`;
    for (const p of b.parts) {
      if (p.ms <= 0) continue;
      const y = sy(acc + p.ms);
      s += `<rect x="${x.toFixed(1)}" y="${y.toFixed(1)}" width="${w.toFixed(2)}" height="${(sy(acc) - y).toFixed(2)}" fill="${c.phaseColors[p.phase] ?? '#888'}"><title>${esc(b.label)}: ${esc(p.phase)} ${esc(fmt(p.ms))} ms</title></rect>`;
      acc += p.ms;
    }
    s += '</g>';
  }
  return s + legend(keys) + '</svg>';
}

/** Confusion matrix: rows = true class, columns = predicted; colour = share of the true class. */
export function confusionHeatmap(labels: string[], matrix: number[][], title = 'Confusion matrix (test)'): string {
  const n = labels.length;
  // with many classes the labels get small; the drawing is vector, so zooming in makes them readable
  const cell = Math.max(6, Math.min(22, Math.floor(900 / Math.max(1, n))));
  const font = Math.max(4, Math.min(11, cell * 0.65));
  const labelW = Math.min(200, 8 + Math.max(...labels.map((l) => l.length)) * font * 0.6);
  const f: Frame = { width: labelW + n * cell + 20, height: labelW + n * cell + 40, left: labelW, right: 20, top: 30, bottom: labelW };
  const total = matrix.reduce((a, r) => a + r.reduce((x, y) => x + y, 0), 0);
  let s = open('confusion', title, f, { classes: n, total });
  s += `<g class="cells"><rect x="${f.left}" y="${f.top}" width="${n * cell}" height="${n * cell}" fill="#f8fafc"/>`;
  matrix.forEach((row, i) => {
    const rowSum = row.reduce((a, b) => a + b, 0);
    row.forEach((v, j) => {
      if (!v) return;
      const share = rowSum ? v / rowSum : 0;
      const color = i === j ? `rgba(22,163,74,${(0.15 + 0.85 * share).toFixed(3)})` : `rgba(220,38,38,${(0.2 + 0.8 * share).toFixed(3)})`;
      s += `<rect class="cell" data-true="${i}" data-predicted="${j}" data-count="${v}" x="${f.left + j * cell}" y="${f.top + i * cell}" width="${cell}" height="${cell}" fill="${color}"><title>true ${esc(labels[i]!)}, predicted ${esc(labels[j]!)}: ${v}</title></rect>`;
    });
  });
  s += '</g>';
  labels.forEach((l, i) => {
    s += `<text class="row-label" x="${f.left - 4}" y="${(f.top + i * cell + cell * 0.72).toFixed(1)}" text-anchor="end" font-size="${font.toFixed(1)}">${esc(l)}</text>`;
    const x = (f.left + i * cell + cell * 0.7).toFixed(1);
    const y = f.top + n * cell + 4;
    s += `<text class="col-label" x="${x}" y="${y}" text-anchor="end" font-size="${font.toFixed(1)}" transform="rotate(-60 ${x} ${y})">${esc(l)}</text>`;
  });
  s += `<text x="${f.left}" y="${f.top - 4}" class="axis-label">rows: true class, columns: predicted</text>`;
  return s + '</svg>';
}

/** Horizontal bars, in the given order (e.g. worst class first). */
export function barChart(kind: string, title: string, items: Array<{ label: string; value: number; note?: string }>, opts: { max?: number; valueFmt?: (v: number) => string } = {}): string {
  const rowH = 16;
  const labelW = Math.min(200, 10 + Math.max(8, ...items.map((i) => i.label.length)) * 6.2);
  const f: Frame = { width: 640, height: 40 + items.length * rowH + 20, left: labelW, right: 60, top: 28, bottom: 20 };
  const max = opts.max ?? Math.max(1e-9, ...items.map((i) => i.value));
  const sx = scale([0, max], [f.left, f.width - f.right]);
  const vf = opts.valueFmt ?? fmt;
  let s = open(kind, title, f, { bars: items.length });
  items.forEach((it, k) => {
    const y = f.top + k * rowH;
    const w = Math.max(0, sx(it.value) - f.left);
    const color = it.value / max < 0.5 ? '#dc2626' : it.value / max < 0.8 ? '#ea580c' : '#16a34a';
    s += `<g class="bar" data-label="${esc(it.label)}" data-value="${it.value}"><text x="${f.left - 6}" y="${y + 12}" text-anchor="end">${esc(it.label)}</text><rect x="${f.left}" y="${y + 2}" width="${w.toFixed(1)}" height="${rowH - 4}" fill="${color}"><title>${esc(it.label)}: ${esc(vf(it.value))}${it.note ? ` (${esc(it.note)})` : ''}</title></rect><text x="${f.left + w + 4}" y="${y + 12}">${esc(vf(it.value))}</text></g>`;
  });
  return s + '</svg>';
}

export interface ParallelSpec {
  title: string;
  /** one axis per hyperparameter plus the objective (last) */
  axes: Array<{ name: string; values: Array<number | string>; log?: boolean }>;
  /** colour lines by this value (the objective), higher = better unless `lowerIsBetter` */
  color: number[];
  lowerIsBetter?: boolean;
}

/** Parallel coordinates: one polyline per trial across hyperparameter axes and the objective. */
export function parallelCoordinates(c: ParallelSpec): string {
  const n = c.color.length;
  const f = frameOf(Math.max(480, 150 * c.axes.length), 300, 40, 40);
  const step = (f.width - f.left - f.right) / Math.max(1, c.axes.length - 1);
  const axisX = (k: number) => f.left + k * step;
  const axisY = c.axes.map((a) => {
    if (a.values.every((v) => typeof v === 'number')) {
      const nums = a.values as number[];
      const log = a.log ?? false;
      const sy = scale([Math.min(...nums), Math.max(...nums) === Math.min(...nums) ? Math.min(...nums) + 1 : Math.max(...nums)], [f.height - f.bottom, f.top + 10], log);
      return { at: (v: number | string) => sy(v as number), ticks: [Math.min(...nums), Math.max(...nums)].map((v) => ({ v, y: sy(v), label: fmt(v) })) };
    }
    const cats = [...new Set(a.values.map(String))].sort();
    const sy = (v: number | string) => f.height - f.bottom - ((cats.indexOf(String(v)) + 0.5) / cats.length) * (f.height - f.bottom - f.top - 10);
    return { at: sy, ticks: cats.map((v) => ({ v, y: sy(v), label: v })) };
  });
  const lo = Math.min(...c.color);
  const hi = Math.max(...c.color);
  const tone = (v: number) => {
    const q = hi > lo ? (v - lo) / (hi - lo) : 1;
    const good = c.lowerIsBetter ? 1 - q : q;
    return `hsl(${Math.round(good * 220)},70%,45%)`;
  };
  let s = open('parallel-coordinates', c.title, f, { axes: c.axes.length, lines: n });
  for (let r = 0; r < n; r++) {
    const d = c.axes.map((a, k) => `${k ? 'L' : 'M'}${axisX(k).toFixed(1)},${axisY[k]!.at(a.values[r]!).toFixed(1)}`).join('');
    s += `<path class="trial" data-trial="${r}" fill="none" stroke="${tone(c.color[r]!)}" stroke-width="1.5" opacity="0.8" d="${d}"><title>trial ${r + 1}: ${c.axes.map((a) => `${esc(a.name)}=${esc(typeof a.values[r] === 'number' ? fmt(a.values[r] as number) : String(a.values[r]))}`).join(', ')}</title></path>`;
  }
  c.axes.forEach((a, k) => {
    s += `<g class="axis" data-axis="${esc(a.name)}"><line x1="${axisX(k)}" y1="${f.top + 10}" x2="${axisX(k)}" y2="${f.height - f.bottom}" stroke="#334155"/><text x="${axisX(k)}" y="${f.height - f.bottom + 16}" text-anchor="middle" class="axis-label">${esc(a.name)}</text>`;
    for (const t of axisY[k]!.ticks) s += `<text x="${axisX(k) + 4}" y="${t.y + 3}">${esc(t.label)}</text>`;
    s += '</g>';
  });
  return s + '</svg>';
}
